/**
 * Initializers, regularizers and constraints given as identifiers ('glorotUniform', Keras's
 * 'glorot_uniform'), serialized configs ({className, config}) or instances, resolved as tfjs's own
 * layers resolve them, using only the public tfjs API.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { ValueError } from '../errors.js';

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

function deserialize<T>(kind: string, where: string, obj: SerializedObject): T {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap[obj.className];
  if (entry == null) {
    throw new ValueError(`${where}: unknown ${kind} class '${obj.className}'`);
  }
  const [cls, fromConfig] = entry;
  return fromConfig(cls, obj.config ?? {}) as T;
}

function fromIdentifier<T>(
  kind: string,
  where: string,
  id: string,
  factories: Record<string, unknown>,
): T {
  const name = camelCase(id);
  const lower = name.charAt(0).toLowerCase() + name.slice(1);
  const factory = factories[lower];
  if (typeof factory === 'function') return (factory as (a: object) => T)({});
  return deserialize<T>(kind, where, { className: name.charAt(0).toUpperCase() + name.slice(1), config: {} });
}

function resolve<T extends object>(
  kind: string,
  where: string,
  id: string | SerializedObject | T | null | undefined,
  factories: Record<string, unknown>,
): T | null {
  if (id == null) return null;
  if (typeof id === 'string') return fromIdentifier<T>(kind, where, id, factories);
  if (id instanceof tf.serialization.Serializable) return id as T;
  if (typeof id === 'object' && typeof (id as SerializedObject).className === 'string') {
    return deserialize<T>(kind, where, id as SerializedObject);
  }
  throw new ValueError(`${where}: cannot interpret ${kind} ${JSON.stringify(id)}`);
}

/** Serializes an initializer, regularizer or constraint as {className, config}, or null. */
export function serialize(obj: tf.serialization.Serializable | null): SerializedObject | null {
  if (obj == null) return null;
  const ctor = obj.constructor as { className?: string };
  return { className: ctor.className ?? obj.getClassName(), config: obj.getConfig() };
}

export function resolveInitializer(where: string, id: InitializerIdentifier): Initializer {
  return resolve<Initializer>('initializer', where, id, tfl.initializers)!;
}

/** A fresh initializer built from `init`'s config, so each kernel draws its own values (Keras clones). */
export function cloneInitializer(where: string, init: Initializer): Initializer {
  return deserialize<Initializer>('initializer', where, serialize(init)!);
}

export function resolveRegularizer(where: string, id: RegularizerIdentifier | null | undefined): Regularizer | null {
  return resolve<Regularizer>('regularizer', where, id, tfl.regularizers);
}

export function resolveConstraint(where: string, id: ConstraintIdentifier | null | undefined): Constraint | null {
  return resolve<Constraint>('constraint', where, id, tfl.constraints);
}
