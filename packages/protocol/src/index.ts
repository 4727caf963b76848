export {}
export * from './mux/index.js'
