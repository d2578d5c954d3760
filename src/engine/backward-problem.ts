/**
 * Validation of a {@link BackwardProblem}: the forward problem's rules (problem.ts) plus the saved
 * forward output, its log-sum-exp and the output gradient. Nothing is computed before this passes.
 */
import { ValueError } from '../errors.js';
import { normalizeProblem, type NormalizedProblem } from './problem.js';
import type { BackwardProblem, BackwardResult } from './types.js';

/** What the forward saved for the backward, checked. */
export interface SavedForward {
  /** (B, T, U, H). */
  readonly output: Float32Array;
  /** (B, U, T); absent when the forward did not return it (the backward then computes it). */
  readonly logSumExp?: Float32Array;
  /** (B, T, U, H). */
  readonly gradOutput: Float32Array;
  /** Where the gradients go (checked lengths), when the caller gave them. */
  readonly into?: BackwardResult;
}

/**
 * Calls of the engine backward (WebAssembly or plain JS) that were given no forward log-sum-exp and
 * so swept Q·Kᵀ once more to compute it. Tests read it to check that the op's gradient passes the
 * forward's statistics through.
 */
export const backwardCounters = { logSumExpRecomputed: 0 };

export function normalizeBackward(
  fn: string,
  problem: BackwardProblem,
  arrays?: { query: Float32Array; key: Float32Array; value: Float32Array },
): { p: NormalizedProblem; saved: SavedForward } {
  const p = normalizeProblem(fn, problem, arrays);
  const check = (arg: string, a: unknown, n: number, dims: string): Float32Array => {
    if (!(a instanceof Float32Array)) {
      throw new ValueError(`${fn}: argument \`problem.${arg}\` must be a Float32Array; received ${a === null || a === undefined ? String(a) : typeof a}.`);
    }
    if (a.length !== n) {
      throw new ValueError(`${fn}: argument \`problem.${arg}\` must have length ${dims} = ${n}; received length ${a.length}.`);
    }
    return a;
  };
  const { B, T, S, U, V, H } = p;
  const queryShaped = [B * T * U * H, `B*T*U*H (${B}*${T}*${U}*${H})`] as const;
  const keyShaped = [B * S * V * H, `B*S*V*H (${B}*${S}*${V}*${H})`] as const;
  const into = problem.into as Partial<Record<keyof BackwardResult, unknown>> | null | undefined;
  const saved = {
    output: check('output', problem.output, ...queryShaped),
    ...(problem.logSumExp === undefined ? {} : { logSumExp: check('logSumExp', problem.logSumExp, B * U * T, `B*U*T (${B}*${U}*${T})`) }),
    gradOutput: check('gradOutput', problem.gradOutput, ...queryShaped),
    ...(into == null
      ? {}
      : {
          into: {
            dQuery: check('into.dQuery', into.dQuery, ...queryShaped),
            dKey: check('into.dKey', into.dKey, ...keyShaped),
            dValue: check('into.dValue', into.dValue, ...keyShaped),
          },
        }),
  };
  return { p, saved };
}
