export const INSPECTOR_JS = ''
