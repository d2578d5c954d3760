/**
 * Initializers, regularizers and constraints given as identifiers ('glorotUniform', Keras's
 * 'glorot_uniform'), serialized configs ({className, config}) or instances, resolved as tfjs's own
 * layers resolve them, using only the public tfjs API.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { formatValue, ValueError } from '../errors.js';

export type Initializer = ReturnType<typeof tfl.initializers.zeros>;
export type Regularizer = ReturnType<typeof tfl.regularizers.l2>;
export type Constraint = ReturnType<typeof tfl.constraints.maxNorm>;

/** A serialized object as tfjs and this package write it. */
export interface SerializedObject {
  className: string;
  config: tf.serialization.ConfigDict;
}

export type InitializerIdentifier = string | SerializedObject | Initializer;
export type RegularizerIdentifier = string | SerializedObject | Regularizer;
export type ConstraintIdentifier = string | SerializedObject | Constraint;

function camelCase(id: string): string {
  return id.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** One kind of identifier: its name in messages, its tfjs factories and its base class. */
interface Kind {
  name: 'initializer' | 'regularizer' | 'constraint';
  factories: Record<string, unknown>;
  /** The tfjs base class every object of this kind extends (found from one of its factories). */
  base: abstract new (...args: never[]) => object;
}

function baseClassOf(sample: object): Kind['base'] {
  return Object.getPrototypeOf(sample.constructor) as Kind['base'];
}

const INITIALIZER: Kind = {
  name: 'initializer',
  factories: tfl.initializers,
  base: baseClassOf(tfl.initializers.zeros()),
};
const REGULARIZER: Kind = {
  name: 'regularizer',
  factories: tfl.regularizers,
  base: baseClassOf(tfl.regularizers.l2()),
};
const CONSTRAINT: Kind = {
  name: 'constraint',
  factories: tfl.constraints,
  base: baseClassOf(tfl.constraints.nonNeg()),
};

/** `<where>: <arg> must be <a kind>...; received <value>`. */
function wrongKind(kind: Kind, where: string, arg: string, received: unknown, why: string): ValueError {
  return new ValueError(
    `${where}: ${arg} must be ${kind.name === 'initializer' ? 'an' : 'a'} ${kind.name} (a name such as ` +
    `${EXAMPLES[kind.name]}, a {className, config} object or a tf ${kind.name}); received ${formatValue(received)}${why}`);
}

const EXAMPLES: Record<Kind['name'], string> = {
  initializer: "'glorotUniform'",
  regularizer: "'l2'",
  constraint: "'maxNorm'",
};

function deserialize<T>(kind: Kind, where: string, arg: string, obj: SerializedObject, received: unknown): T {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[obj.className];
  if (entry == null) throw wrongKind(kind, where, arg, received, ` (no ${kind.name} class '${obj.className}')`);
  const [cls, fromConfig] = entry;
  // The class map holds every kind (layers, initializers, ...): check before constructing.
  if (!(cls.prototype instanceof kind.base)) {
    throw wrongKind(kind, where, arg, received, ` ('${obj.className}' is not ${kind.name === 'initializer' ? 'an' : 'a'} ${kind.name})`);
  }
  return fromConfig(cls, obj.config ?? {}) as T;
}

function fromIdentifier<T>(kind: Kind, where: string, arg: string, id: string): T {
  const name = camelCase(id);
  const lower = name.charAt(0).toLowerCase() + name.slice(1);
  const factory = kind.factories[lower];
  if (typeof factory === 'function') {
    const made = (factory as (a: object) => unknown)({});
    if (made instanceof kind.base) return made as T;
  }
  return deserialize<T>(kind, where, arg, { className: name.charAt(0).toUpperCase() + name.slice(1), config: {} }, id);
}

function resolve<T extends object>(
  kind: Kind,
  where: string,
  arg: string,
  id: string | SerializedObject | T | null | undefined,
): T | null {
  if (id == null) return null;
  if (typeof id === 'string') return fromIdentifier<T>(kind, where, arg, id);
  if (id instanceof kind.base) return id as T;
  if (typeof id === 'object' && typeof (id as SerializedObject).className === 'string') {
    return deserialize<T>(kind, where, arg, id as SerializedObject, id);
  }
  throw wrongKind(kind, where, arg, id, '');
}

/** Serializes an initializer, regularizer or constraint as {className, config}, or null. */
export function serialize(obj: tf.serialization.Serializable | null): SerializedObject | null {
  if (obj == null) return null;
  const ctor = obj.constructor as { className?: string };
  return { className: ctor.className ?? obj.getClassName(), config: obj.getConfig() };
}

/** Resolves argument `arg` (e.g. 'kernelInitializer') as an initializer, or raises naming it. */
export function resolveInitializer(where: string, arg: string, id: InitializerIdentifier): Initializer {
  return resolve<Initializer>(INITIALIZER, where, arg, id)!;
}

/** A fresh initializer built from `init`'s config, so each kernel draws its own values (Keras clones). */
export function cloneInitializer(where: string, init: Initializer): Initializer {
  return deserialize<Initializer>(INITIALIZER, where, 'initializer', serialize(init)!, init);
}

/** Resolves argument `arg` (e.g. 'kernelRegularizer') as a regularizer or null, or raises naming it. */
export function resolveRegularizer(where: string, arg: string, id: RegularizerIdentifier | null | undefined): Regularizer | null {
  return resolve<Regularizer>(REGULARIZER, where, arg, id);
}

/** Resolves argument `arg` (e.g. 'kernelConstraint') as a constraint or null, or raises naming it. */
export function resolveConstraint(where: string, arg: string, id: ConstraintIdentifier | null | undefined): Constraint | null {
  return resolve<Constraint>(CONSTRAINT, where, arg, id);
}
