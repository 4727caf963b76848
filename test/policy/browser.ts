import assert from 'node:assert/strict'
import { fetch as undiciFetch, type Dispatcher } from 'undici'

/** A browser, reduced: a cookie jar per host:port and manual redirects. */
export class Browser {
  constructor(private readonly dispatcher?: Dispatcher) {}

  jar = new Map<string, Map<string, string>>()
  trail: string[] = []

  private cookiesFor(url: URL): string {
    return [...(this.jar.get(url.host) ?? new Map()).entries()].map(([k, v]) => `${k}=${v}`).join('; ')
  }

  private store(url: URL, res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';')
      const eq = pair!.indexOf('=')
      const name = pair!.slice(0, eq).trim()
      const value = pair!.slice(eq + 1).trim()
      const jar = this.jar.get(url.host) ?? new Map<string, string>()
      this.jar.set(url.host, jar)
      const expired = attrs.some((a) => /max-age=0\b/i.test(a.trim())) || value === ''
      if (expired) jar.delete(name)
      else jar.set(name, value)
    }
  }

  async fetch(input: string, init: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<Response> {
    let url = new URL(input)
    let method = init.method ?? 'GET'
    let body = init.body
    let headers = init.headers ?? {}
    for (let hops = 0; hops < 20; hops++) {
      this.trail.push(`${method} ${url.href}`)
      const res = (await undiciFetch(url, { method, body, redirect: 'manual', headers: { ...headers, cookie: this.cookiesFor(url), accept: 'text/html' }, ...(this.dispatcher ? { dispatcher: this.dispatcher } : {}) })) as unknown as Response
      this.store(url, res)
      const location = res.headers.get('location')
      if (res.status >= 300 && res.status < 400 && location) {
        await res.arrayBuffer()
        url = new URL(location, url)
        method = 'GET'
        body = undefined
        headers = {}
        continue
      }
      return res
    }
    throw new Error(`too many redirects: ${this.trail.join(' -> ')}`)
  }

  /** Submit the first form on an HTML page, with its hidden fields and `fields`. */
  async submit(page: Response, pageUrl: string, fields: Record<string, string>): Promise<Response> {
    const html = await page.text()
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1]
    assert.ok(action, `no form on the page: ${html.slice(0, 200)}`)
    const form = new URLSearchParams()
    for (const m of html.matchAll(/<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"/g)) form.set(m[1]!, m[2]!)
    for (const [k, v] of Object.entries(fields)) form.set(k, v)
    return this.fetch(new URL(action.replace(/&amp;/g, '&'), pageUrl).href, {
      method: 'POST', body: form.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' },
    })
  }
}

