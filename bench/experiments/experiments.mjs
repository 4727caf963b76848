// Proposed changes to other packages, written as patches to their built JS so that their
// effect can be measured here (see make-variant.mjs). Each says what it changes and why;
// the findings in bench/README.md give the figures.
export const EXPERIMENTS = {
  // relay-request.ts sendBody(): a request without a body (most GETs) still builds a
  // BodyFramer and a stream.pipeline(), whose AbortController is aborted on finish and
  // builds a DOMException with a stack trace. Ending the stream right after the head
  // skips all of it and puts head, END and FIN in the same tick, so one ws write.
  'relay-no-empty-pipeline': {
    // The relay's owner made this change in ee49423; kept as the record of what was measured.
    applied: 'ee49423',
    patches: [{
      pkg: 'relay',
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
      pkg: 'relay',
      file: 'relay-request.js',
      from: `import { BodyFramer, MessageReader, writeJsonMessage } from '@gw/protocol/message-stream';`,
      to: `import { BodyFramer, MessageReader, writeJsonMessage, endMessage } from '@gw/protocol/message-stream';`,
    }],
  },

  // mux/session.ts _sendFrame(): the transport is uncorked on process.nextTick, so frames
  // queued by a later nextTick of the same turn (Writable's _final → the FIN) leave in a
  // second ws message and a second writev. Uncorking on setImmediate sends everything one
  // event-loop turn produced, over all streams, in one write.
  'mux-uncork-on-immediate': {
    patches: [{
      pkg: 'protocol',
      file: 'mux/session.js',
      from: 'process.nextTick(uncorkTransport, this)',
      to: 'setImmediate(uncorkTransport, this)',
    }],
  },

  // mux/session.ts: every stream starts at the spec's 256 KiB window and grows only when
  // half a window is consumed within 4 RTTs of the link's (idle) ping RTT, which a busy
  // event loop rarely manages, so one bulk stream runs window-bound (relay and agent both
  // partly idle in the profile). Starting streams at 4 MiB (announced in SYN/ACK, as the
  // session already supports through `initialWindow`) removes the bound; receive memory
  // is still capped per stream by the window.
  'mux-initial-window-4m': {
    patches: [{
      pkg: 'protocol',
      file: 'mux/session.js',
      from: 'this.initialWindow = options.initialWindow ?? INITIAL_STREAM_WINDOW;',
      to: 'this.initialWindow = options.initialWindow ?? 4 * 1024 * 1024;',
    }],
  },

  // relay.ts listen(): Node's default backlog is 511. With 10,000 clients connecting at
  // once the accept queue overflows, the kernel drops SYNs and clients retry after 1, 3
  // and 7 s (scenario 4's wall time, and a few ECONNRESET).
  'relay-listen-backlog': {
    // Applied by the relay's owner in e0ca85f.
    applied: 'e0ca85f',
    patches: [{
      pkg: 'relay',
      file: 'relay.js',
      from: 'server.listen(port, host, () => {',
      to: 'server.listen({ port, host, backlog: 4096 }, () => {',
    }],
  },
  // relay-request.ts pipeBody(): each decoded DATA piece is its own res.write(), so its own
  // write syscall to the client. Corking the response until the end of the tick sends the
  // pieces one ws message carried in one writev.
  'relay-cork-response': {
    patches: [{
      pkg: 'relay',
      file: 'relay-request.js',
      from: `    body.on('data', (chunk) => {
        if (!res.write(chunk)) {`,
      to: `    let corked = false;
    const uncork = () => { corked = false; res.uncork(); };
    body.on('data', (chunk) => {
        if (!corked) { corked = true; res.cork(); process.nextTick(uncork); }
        if (!res.write(chunk)) {`,
    }],
  },

  // mux/session.ts streamFor(): an accepted stream's ACK goes out at once, as its own
  // frame, and the response follows a few ms later: two ws messages, two writes by the
  // agent and two reads by the relay per request. Carrying ACK on the stream's first
  // outgoing frame (Data, window update or FIN) saves one of each. gw's session ignores
  // ACK flags on receipt and never waits for one, so this is safe between gw peers; for
  // hashicorp peers (which time out an unacknowledged open after 75 s) a real change
  // needs a fallback timer that sends a bare ACK.
  'mux-ack-on-first-frame': {
    patches: [{
      pkg: 'protocol',
      file: 'mux/session.js',
      from: `        this._sendFrame(FrameType.WINDOW_UPDATE, FrameFlag.ACK, streamId, stream._initialDelta());
        if (listening`,
      to: `        const ackDelta = stream._initialDelta();
        if (ackDelta > 0) this._sendFrame(FrameType.WINDOW_UPDATE, FrameFlag.ACK, streamId, ackDelta);
        else stream._ackPending = true;
        if (listening`,
    }, {
      pkg: 'protocol',
      file: 'mux/stream.js',
      from: 'host._sendFrame(FrameType.DATA, 0, this.id, size, takeParts(pending, size));',
      to: 'host._sendFrame(FrameType.DATA, this._ackPending ? (this._ackPending = false, FrameFlag.ACK) : 0, this.id, size, takeParts(pending, size));',
    }, {
      pkg: 'protocol',
      file: 'mux/stream.js',
      from: 'this.host._sendFrame(FrameType.WINDOW_UPDATE, FrameFlag.FIN, this.id, 0);',
      to: 'this.host._sendFrame(FrameType.WINDOW_UPDATE, FrameFlag.FIN | (this._ackPending ? (this._ackPending = false, FrameFlag.ACK) : 0), this.id, 0);',
    }, {
      pkg: 'protocol',
      file: 'mux/stream.js',
      from: 'this.host._sendFrame(FrameType.WINDOW_UPDATE, 0, this.id, delta);',
      to: 'this.host._sendFrame(FrameType.WINDOW_UPDATE, this._ackPending ? (this._ackPending = false, FrameFlag.ACK) : 0, this.id, delta);',
    }],
  },

  // mux/session.ts: stream windows grow toward DEFAULT_MAX_WINDOW (16 MiB) when half a
  // window is consumed within 4 RTTs. A download's first burst fills the client's socket
  // buffers that fast, so a slow reader's stream can end up with a window of several MiB,
  // all of it buffered in the relay (scenario 6, 30 s: +4.7 MiB). Pinning the window to the
  // initial 256 KiB shows whether growth is where that memory comes from.
  'mux-no-window-growth': {
    patches: [{
      pkg: 'protocol',
      file: 'mux/session.js',
      from: 'this.maxWindow = Math.max(options.maxWindow ?? DEFAULT_MAX_WINDOW, this.initialWindow);',
      to: 'this.maxWindow = this.initialWindow;',
    }],
  },

  // message-codec.ts MessageDecoder: each decoder (one per request stream, both sides)
  // takes its 5-byte header scratch from Buffer.allocUnsafe's shared 8 KiB pool. Other
  // allocations fill the rest of each slab, so with 10,000 requests in flight ~2,000
  // slabs (15.6 MiB in the relay's heap snapshot, all retained only through
  // MessageDecoder.header) cannot be freed. A 5-byte buffer of its own pins nothing.
  'decoder-header-unpooled': {
    patches: [{
      pkg: 'protocol',
      file: 'message-codec.js',
      from: '    header = Buffer.allocUnsafe(MESSAGE_HEADER_SIZE);',
      to: '    header = Buffer.allocUnsafeSlow(MESSAGE_HEADER_SIZE);',
    }],
  },
}
