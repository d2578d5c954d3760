/** The plain-JS engine (no WebAssembly SIMD): single-threaded, same API and results. */
import { formatValue, ValueError } from '../errors.js';
import { attentionJs } from './js-path.js';
import { normalizeInto, normalizeProblem } from './problem.js';
import { attentionBackwardJs } from './backward-js.js';
import { normalizeBackward } from './backward-problem.js';
import type { AttentionEngine, AttentionResult, BackwardProblem, BackwardResult, EngineBuffer, EngineProblem } from './types.js';

class JsBuffer implements EngineBuffer {
  freed = false;
  readonly byteOffset = 0;
  private data: Float32Array | null;
  constructor(
    readonly owner: JsEngine,
    readonly length: number,
  ) {
    this.data = new Float32Array(length);
  }
  view(): Float32Array {
    if (this.freed || this.data === null) throw new ValueError('EngineBuffer.view: the buffer was freed');
    return this.data;
  }
  free(): void {
    if (this.freed) return;
    this.freed = true;
    this.data = null;
    this.owner.released(this.length * 4);
  }
}

export class JsEngine implements AttentionEngine {
  readonly kind = 'js' as const;
  readonly kernel = 'js' as const;
  readonly threads = 1;
  readonly sharedMemory = false;
  readonly ready = Promise.resolve();
  private disposed = false;
  private bytes = 0;

  attention(problem: EngineProblem): AttentionResult {
    if (this.disposed) throw new ValueError('AttentionEngine.attention: the engine was disposed');
    const resolve = (arg: string, x: Float32Array | EngineBuffer): Float32Array => {
      if (x instanceof JsBuffer) {
        if (x.owner !== this || x.freed) {
          throw new ValueError(
            `AttentionEngine.attention: argument \`problem.${arg}\` must be a Float32Array or an EngineBuffer of this engine that is not freed; received ${x.freed ? 'a freed EngineBuffer' : 'an EngineBuffer of another engine'}.`,
          );
        }
        return x.view();
      }
      return x as Float32Array;
    };
    const p = normalizeProblem('AttentionEngine.attention', problem as never, {
      query: resolve('query', problem?.query),
      key: resolve('key', problem?.key),
      value: resolve('value', problem?.value),
    });
    return attentionJs(p, normalizeInto('AttentionEngine.attention', problem as never, p));
  }

  attentionBackward(problem: BackwardProblem): BackwardResult {
    if (this.disposed) throw new ValueError('AttentionEngine.attentionBackward: the engine was disposed');
    const { p, saved } = normalizeBackward('AttentionEngine.attentionBackward', problem);
    return attentionBackwardJs(p, saved);
  }

  allocate(floats: number): EngineBuffer {
    if (this.disposed) throw new ValueError('AttentionEngine.allocate: the engine was disposed');
    if (typeof floats !== 'number' || !Number.isInteger(floats) || floats < 1) {
      throw new ValueError(`AttentionEngine.allocate: argument \`floats\` must be a positive integer; received ${formatValue(floats)}.`);
    }
    this.bytes += floats * 4;
    return new JsBuffer(this, floats);
  }

  /** Bytes of the buffers not yet freed. */
  memoryBytes(): number {
    return this.bytes;
  }

  /** @internal Called by a buffer when it is freed. */
  released(bytes: number): void {
    this.bytes -= bytes;
  }

  dispose(): void {
    this.disposed = true;
  }
}
