// Proposed changes to other packages, written as patches to their built JS so that their
// effect can be measured here (see make-variant.mjs). Each says what it changes and why;
// the findings in bench/README.md give the figures.
export const EXPERIMENTS = {
  // relay-request.ts sendBody(): a request without a body (most GETs) still builds a
  // BodyFramer and a stream.pipeline(), whose AbortController is aborted on finish and
  // builds a DOMException with a stack trace. Ending the stream right after the head
  // skips all of it and puts head, END and FIN in the same tick, so one ws write.
  'relay-no-empty-pipeline': {
    pkg: 'relay',
    patches: [{
      file: 'relay-request.js',
      from: `        bodySent = true;
        pipeline(req, new BodyFramer(), stream, (err) => {`,
      to: `        bodySent = true;
        if (!head.hasBody) {
            req.resume();
            stream.end(endMessage());
            return;
        }
        pipeline(req, new BodyFramer(), stream, (err) => {`,
    }, {
      file: 'relay-request.js',
      from: `import { BodyFramer, MessageReader, writeJsonMessage } from '@gw/protocol/message-stream';`,
      to: `import { BodyFramer, MessageReader, writeJsonMessage, endMessage } from '@gw/protocol/message-stream';`,
    }],
  },
}
