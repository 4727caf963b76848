/** A FrameHandler that records what the decoder reports, with Data payloads joined per frame. */
import { FrameDecoder, FrameType, type FrameHandler } from '@gw/protocol'

export interface RecordedFrame {
  type: number
  flags: number
  streamId: number
  length: number
  payload?: string
}

export class FrameRecorder implements FrameHandler {
  frames: RecordedFrame[] = []
  private parts: Buffer[] = []

  onFrame(type: number, flags: number, streamId: number, length: number): void {
    this.frames.push({ type, flags, streamId, length })
  }

  onData(chunk: Buffer): void {
    this.parts.push(chunk)
  }

  onDataEnd(): void {
    const last = this.frames[this.frames.length - 1]!
    last.payload = Buffer.concat(this.parts).toString('hex')
    this.parts = []
  }
}

/** Decode `bytes` fed as the given chunks; returns what was decoded. */
export function decodeChunks(chunks: Buffer[], maxFrameSize = 1024 * 1024): RecordedFrame[] {
  const recorder = new FrameRecorder()
  const decoder = new FrameDecoder(recorder, { maxFrameSize })
  for (const chunk of chunks) decoder.push(chunk)
  if (!decoder.atBoundary) throw new Error('the decoder stopped inside a frame')
  return recorder.frames
}

/** What decoding should produce for a frame list. */
export function expected(frames: Array<{ type: number; flags: number; streamId: number; length: number; payload?: Buffer }>): RecordedFrame[] {
  return frames.map((f) => {
    if (f.type === FrameType.DATA) {
      const payload = f.payload ?? Buffer.alloc(0)
      return { type: f.type, flags: f.flags, streamId: f.streamId, length: payload.length, payload: payload.toString('hex') }
    }
    return { type: f.type, flags: f.flags, streamId: f.streamId, length: f.length }
  })
}
