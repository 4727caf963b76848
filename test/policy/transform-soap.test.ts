import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { request } from 'undici'
import { XMLParser } from 'fast-xml-parser'
import { compilePolicy } from '@gw/cli/policy/index'
import { startPolicyGateway, startEchoUpstream, type PolicyGateway } from './tunnel-stack.js'

/** A small SOAP service: GetPrice answers, BadItem faults as the client's fault, Crash as the server's. */
let soapServer: Server
let soapUrl: string
const soapSeen: Array<{ contentType: string; soapAction: string | undefined; body: string }> = []

let echo: Awaited<ReturnType<typeof startEchoUpstream>>
let xmlUpstream: Server
let gateway: PolicyGateway
let xmlGateway: PolicyGateway

before(async () => {
  soapServer = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => (body += c.toString()))
    req.on('end', () => {
      soapSeen.push({ contentType: req.headers['content-type'] ?? '', soapAction: req.headers['soapaction'] as string | undefined, body })
      const v12 = (req.headers['content-type'] ?? '').startsWith('application/soap+xml')
      const env = v12 ? 'http://www.w3.org/2003/05/soap-envelope' : 'http://schemas.xmlsoap.org/soap/envelope/'
      const parsed = new XMLParser({ removeNSPrefix: true }).parse(body) as any
      const op = Object.keys(parsed.Envelope.Body)[0]
      res.setHeader('content-type', v12 ? 'application/soap+xml; charset=utf-8' : 'text/xml; charset=utf-8')
      if (op === 'GetPrice') {
        const item = parsed.Envelope.Body.GetPrice.Item
        res.end(`<?xml version="1.0"?><s:Envelope xmlns:s="${env}"><s:Body><m:GetPriceResponse xmlns:m="http://example.test/stock"><m:Item>${item}</m:Item><m:Price>34.5</m:Price></m:GetPriceResponse></s:Body></s:Envelope>`)
        return
      }
      res.statusCode = 500
      if (v12) {
        const code = op === 'BadItem' ? 'Sender' : 'Receiver'
        res.end(`<?xml version="1.0"?><s:Envelope xmlns:s="${env}"><s:Body><s:Fault><s:Code><s:Value>s:${code}</s:Value></s:Code><s:Reason><s:Text xml:lang="en">${op} failed</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>`)
      } else {
        const code = op === 'BadItem' ? 'Client' : 'Server'
        res.end(`<?xml version="1.0"?><s:Envelope xmlns:s="${env}"><s:Body><s:Fault><faultcode>s:${code}</faultcode><faultstring>${op} failed</faultstring><detail><reason>unknown item</reason></detail></s:Fault></s:Body></s:Envelope>`)
      }
    })
  })
  await new Promise<void>((r) => soapServer.listen(0, '127.0.0.1', r))
  soapUrl = `http://127.0.0.1:${(soapServer.address() as AddressInfo).port}`

  echo = await startEchoUpstream()
  gateway = await startPolicyGateway(compilePolicy({
    upstreams: { soap: { targets: [soapUrl] } },
    on_http_request: [
      { expressions: ["req.url.path.startsWith('/soap11/')"], actions: [
        { type: 'soap', config: { version: '1.1', namespace: 'http://example.test/stock', path: '/service' } },
        { type: 'forward', config: { upstream: 'soap' } },
      ] },
      { expressions: ["req.url.path.startsWith('/soap12/')"], actions: [
        { type: 'soap', config: { version: '1.2', namespace: 'http://example.test/stock', action: 'urn:stock#${req.url.path.split("/")[2]}' } },
        { type: 'forward', config: { upstream: 'soap' } },
      ] },
      { expressions: ["req.url.path == '/to-xml'"], actions: [{ type: 'transform-body', config: { from: 'json', to: 'xml', root: 'order' } }] },
    ],
  }), echo.url)

  // An upstream that answers XML, for XML → JSON on the response.
  xmlUpstream = createServer((_req, res) => {
    res.setHeader('content-type', 'application/xml')
    res.end('<?xml version="1.0"?><order id="7"><item sku="A-1">Widget</item><item sku="B-2">Gadget</item><total>12.5</total></order>')
  })
  await new Promise<void>((r) => xmlUpstream.listen(0, '127.0.0.1', r))
  xmlGateway = await startPolicyGateway(compilePolicy({ on_http_response: [{ actions: [{ type: 'transform-body', config: { from: 'xml', to: 'json' } }] }] }),
    `http://127.0.0.1:${(xmlUpstream.address() as AddressInfo).port}`)
})

after(async () => {
  await gateway.close()
  await xmlGateway.close()
  await echo.close()
  for (const s of [soapServer, xmlUpstream]) {
    s.closeAllConnections()
    await new Promise<void>((r) => s.close(() => r()))
  }
})

test('transform-body: a JSON request becomes XML with Content-Type and Content-Length fixed', async () => {
  const res = await request(`${gateway.url}/to-xml`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id: 7, items: [{ sku: 'A-1' }, { sku: 'B-2' }], note: 'a < b & c' }) })
  const seen = (await res.body.json()) as { body: string; headers: Record<string, string> }
  assert.equal(seen.headers['content-type'], 'application/xml; charset=utf-8')
  assert.equal(seen.headers['content-length'], String(Buffer.byteLength(seen.body)))
  assert.equal(seen.body, '<?xml version="1.0" encoding="UTF-8"?><order><id>7</id><items><sku>A-1</sku></items><items><sku>B-2</sku></items><note>a &lt; b &amp; c</note></order>')
})

test('transform-body: an XML response becomes JSON', async () => {
  const res = await request(`${xmlGateway.url}/anything`)
  assert.equal(res.headers['content-type'], 'application/json; charset=utf-8')
  const body = (await res.body.json()) as Record<string, any>
  assert.deepEqual(body, { order: { item: [{ '#text': 'Widget', '@_sku': 'A-1' }, { '#text': 'Gadget', '@_sku': 'B-2' }], total: 12.5, '@_id': '7' } })
})

test('soap 1.1: JSON in, envelope with SOAPAction to the service, JSON out', async () => {
  soapSeen.length = 0
  const res = await request(`${gateway.url}/soap11/GetPrice`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ Item: 'Apples' }) })
  assert.equal(res.statusCode, 200)
  assert.deepEqual(await res.body.json(), { Item: 'Apples', Price: 34.5 })
  assert.equal(soapSeen[0]!.contentType, 'text/xml; charset=utf-8')
  assert.equal(soapSeen[0]!.soapAction, '"http://example.test/stock/GetPrice"')
  assert.match(soapSeen[0]!.body, /<soap:Envelope xmlns:soap="http:\/\/schemas.xmlsoap.org\/soap\/envelope\/"><soap:Body><m:GetPrice xmlns:m="http:\/\/example.test\/stock"><m:Item>Apples<\/m:Item><\/m:GetPrice>/)
})

test('soap 1.1 faults: a client fault is 400, a server fault 502 with gw-error-code', async () => {
  let res = await request(`${gateway.url}/soap11/BadItem`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"Item":"x"}' })
  assert.equal(res.statusCode, 400)
  assert.deepEqual(await res.body.json(), { error: 'soap_fault', code: 's:Client', message: 'BadItem failed', detail: { reason: 'unknown item' } })
  res = await request(`${gateway.url}/soap11/Crash`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  assert.equal(res.statusCode, 502)
  assert.equal(res.headers['gw-error-code'], 'GW_ERR_POLICY_SOAP_FAULT')
  assert.equal(((await res.body.json()) as { message: string }).message, 'Crash failed')
})

test('soap 1.2: action in the Content-Type, Sender/Receiver faults', async () => {
  soapSeen.length = 0
  let res = await request(`${gateway.url}/soap12/GetPrice`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"Item":"Pears"}' })
  assert.equal(res.statusCode, 200)
  assert.deepEqual(await res.body.json(), { Item: 'Pears', Price: 34.5 })
  assert.equal(soapSeen[0]!.contentType, 'application/soap+xml; charset=utf-8; action="urn:stock#GetPrice"')
  res = await request(`${gateway.url}/soap12/BadItem`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  assert.equal(res.statusCode, 400)
  assert.equal(((await res.body.json()) as { message: string }).message, 'BadItem failed')
  res = await request(`${gateway.url}/soap12/Crash`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  assert.equal(res.statusCode, 502)
  await res.body.dump()
})

test('soap: a body that is not a JSON object gets 400 before the service', async () => {
  soapSeen.length = 0
  const res = await request(`${gateway.url}/soap11/GetPrice`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[1,2]' })
  assert.equal(res.statusCode, 400)
  await res.body.dump()
  assert.equal(soapSeen.length, 0)
})
