export const INSPECTOR_CSS = ''
