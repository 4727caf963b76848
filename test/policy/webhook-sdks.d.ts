// coinbase-commerce-node ships no types; the tests use only its webhook helpers.
declare module 'coinbase-commerce-node' {
  const coinbase: {
    Webhook: {
      computeSignature(payload: string, secret: string): string
      verifySigHeader(payload: string, signature: string, secret: string): true
    }
  }
  export default coinbase
}
