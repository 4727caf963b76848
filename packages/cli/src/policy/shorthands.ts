export interface PolicyShorthands {}
export function shorthandsToPolicy(_flags: PolicyShorthands): Record<string, unknown> { return {} }
