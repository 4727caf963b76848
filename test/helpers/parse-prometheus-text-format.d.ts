// The package ships no types: the shape of its output (prom2json's), as the tests read it.
declare module 'parse-prometheus-text-format' {
  interface Sample {
    value?: string
    labels?: Record<string, string>
    buckets?: Record<string, string>
    quantiles?: Record<string, string>
    count?: string
    sum?: string
  }
  interface Family {
    name: string
    help: string
    type: string
    metrics: Sample[]
  }
  export default function parsePrometheusTextFormat(text: string): Family[]
}
