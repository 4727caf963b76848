// The gwbench.Echo service of scenario 11, loaded from bench/fixtures/bench-echo.proto.
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { fileURLToPath } from 'node:url'

const PROTO = fileURLToPath(new URL('../fixtures/bench-echo.proto', import.meta.url))

export function echoService() {
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(PROTO, { keepCase: true, defaults: true }))
  return pkg.gwbench.Echo
}

export { grpc }
