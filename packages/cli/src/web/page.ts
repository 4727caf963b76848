export const INSPECTOR_HTML = ''
