/**
 * The policy registry: one place where every method is listed. A policy is named by
 * a string (`'snapkv'`) or an object (`{ name: 'snapkv', window: 16 }`); a composition
 * `base+stage[+stage…]` runs the base scorer, the shared selector, then each stage
 * (options of a stage go under its name: `{ name: 'snapkv+kvcrush', kvcrush: {…} }`).
 * Unknown names and options are rejected with an `E_ARG` error listing what exists.
 */
import { EdgeKVError, fmt } from '../errors.ts';
import { balancekvPolicy } from './balancekv.ts';
import { fullPolicy } from './full.ts';
import { h2oPolicy } from './h2o.ts';
import { knormPolicy } from './knorm.ts';
import { kvcrushStage } from './kvcrush.ts';
import { snapkvPolicy } from './snapkv.ts';
import { streamingLlmPolicy } from './streaming-llm.ts';
import { tovaPolicy } from './tova.ts';
import { uniformPolicy } from './uniform.ts';
import type { CacheGeometry, OptionSpec, Policy, PolicyFactory, Stage, StageFactory } from './types.ts';

const policies = new Map<string, PolicyFactory>();
const stages = new Map<string, StageFactory>();

/** Register a policy under its name (replacing none: a duplicate name throws). */
export function registerPolicy(f: PolicyFactory): void {
  if (policies.has(f.name) || stages.has(f.name)) throw new EdgeKVError('E_ARG', `policy ${JSON.stringify(f.name)} is already registered`, 'name');
  if (!/^[a-z0-9-]+$/.test(f.name)) throw new EdgeKVError('E_ARG', `policy name ${JSON.stringify(f.name)}: use lowercase letters, digits and '-'`, 'name');
  policies.set(f.name, f);
}

/** Register a stage usable in compositions `base+<name>`. */
export function registerStage(f: StageFactory): void {
  if (policies.has(f.name) || stages.has(f.name)) throw new EdgeKVError('E_ARG', `stage ${JSON.stringify(f.name)} is already registered`, 'name');
  if (!/^[a-z0-9-]+$/.test(f.name)) throw new EdgeKVError('E_ARG', `stage name ${JSON.stringify(f.name)}: use lowercase letters, digits and '-'`, 'name');
  stages.set(f.name, f);
}

/** Names of the registered policies. */
export function policyNames(): string[] { return [...policies.keys()]; }
/** Names of the registered stages. */
export function stageNames(): string[] { return [...stages.keys()]; }
/** A registered policy's factory (undefined when unknown). */
export function getPolicy(name: string): PolicyFactory | undefined { return policies.get(name); }

for (const f of [fullPolicy, streamingLlmPolicy, h2oPolicy, snapkvPolicy, tovaPolicy, knormPolicy, uniformPolicy, balancekvPolicy]) registerPolicy(f);
registerStage(kvcrushStage);

/** A policy by name, or by name plus options. */
export type PolicySpec = string | ({ name: string } & Record<string, unknown>);

function resolveOptions(where: string, specs: Record<string, OptionSpec>, given: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, s] of Object.entries(specs)) out[k] = given[k] === undefined ? s.default : s.check(`${where}.${k}`, given[k]);
  return out;
}

/**
 * Validate a policy spec and build the policy. `where` names the option in errors
 * (default 'options.policy'). Returns the policy and its canonical spec (all options
 * filled in), which reproduces it exactly.
 */
export function createPolicy(spec: unknown, geometry: CacheGeometry, where = 'options.policy'): { policy: Policy; spec: { name: string } & Record<string, unknown> } {
  let name: string;
  let given: Record<string, unknown> = {};
  if (typeof spec === 'string') name = spec;
  else if (spec !== null && typeof spec === 'object' && !Array.isArray(spec) && typeof (spec as { name?: unknown }).name === 'string') {
    name = (spec as { name: string }).name;
    given = spec as Record<string, unknown>;
  } else {
    throw new EdgeKVError('E_ARG', `${where} = ${fmt(spec)} is not allowed: expected a policy name (${policyNames().join(', ')}) or { name, ...options }`, where);
  }
  const [baseName, ...stageList] = name.split('+');
  const base = policies.get(baseName);
  if (!base) {
    throw new EdgeKVError('E_ARG', `${where}: unknown policy ${JSON.stringify(baseName)}; known policies: ${policyNames().join(', ')}${stageList.length ? '' : `; compositions: <policy>+<stage> with stages ${stageNames().join(', ') || '(none registered)'}`}`, where);
  }
  const stageFactories: StageFactory[] = [];
  for (const s of stageList) {
    const f = stages.get(s);
    if (!f) throw new EdgeKVError('E_ARG', `${where}: unknown stage ${JSON.stringify(s)} in ${JSON.stringify(name)}; known stages: ${stageNames().join(', ') || '(none registered)'}`, where);
    if (stageFactories.includes(f)) throw new EdgeKVError('E_ARG', `${where}: stage ${JSON.stringify(s)} appears twice in ${JSON.stringify(name)}`, where);
    stageFactories.push(f);
  }
  const allowed = ['name', ...Object.keys(base.options), ...stageList];
  for (const k of Object.keys(given)) {
    if (!allowed.includes(k)) {
      throw new EdgeKVError('E_ARG', `${where}.${k} is not an option of policy ${JSON.stringify(name)}; its options: ${allowed.slice(1).join(', ') || '(none)'}`, `${where}.${k}`);
    }
  }
  const config = resolveOptions(where, base.options, given);
  const policy = base.create(config, geometry);
  const canonical: { name: string } & Record<string, unknown> = { name, ...config };
  if (stageFactories.length) {
    if (!policy.score) throw new EdgeKVError('E_ARG', `${where}: ${JSON.stringify(baseName)} is not a scorer; stages (${stageList.join(', ')}) compose only with scoring policies`, where);
    const built: Stage[] = [];
    for (const f of stageFactories) {
      const g = given[f.name] ?? {};
      if (g === null || typeof g !== 'object' || Array.isArray(g)) throw new EdgeKVError('E_ARG', `${where}.${f.name} = ${fmt(g)}: expected an object of ${f.name} options`, `${where}.${f.name}`);
      const allowedStage = Object.keys(f.options);
      for (const k of Object.keys(g)) {
        if (!allowedStage.includes(k)) throw new EdgeKVError('E_ARG', `${where}.${f.name}.${k} is not an option of stage ${f.name}; its options: ${allowedStage.join(', ') || '(none)'}`, `${where}.${f.name}.${k}`);
      }
      const sc = resolveOptions(`${where}.${f.name}`, f.options, g as Record<string, unknown>);
      canonical[f.name] = sc;
      built.push(f.create(sc, geometry));
    }
    // A stage's needs add to the base's (the larger query window, any observer).
    const needs = { ...policy.needs };
    for (const st of built) {
      if (st.needs?.attendProbs) needs.attendProbs = true;
      if ((st.needs?.queryWindow ?? 0) > (needs.queryWindow ?? 0)) needs.queryWindow = st.needs!.queryWindow;
    }
    return { policy: { ...policy, name, stages: built, needs }, spec: canonical };
  }
  return { policy, spec: canonical };
}
