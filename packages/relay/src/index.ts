export { startRelay, type Relay } from './relay.js'
export { resolveRelayOptions, defaultStateDir, RELAY_DEFAULTS, type RelayOptions, type LogFn } from './options.js'
export { parseTokensFile, hashToken } from './authtokens.js'
export { RANDOM_NAME_BITS, randomName, checkName } from './names.js'
