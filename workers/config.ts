import * as v from "valibot";
import { type Config, ConfigSchema } from "../schemas/config";

const parsed = new WeakMap<object, Config>();

/** Thrown once per isolate when the environment is misconfigured; the message names every problem. */
export class ConfigurationError extends Error {
  override name = "ConfigurationError";
}

/**
 * The typed configuration for this environment, parsed by `schemas/config.ts` once per isolate.
 * Throws ConfigurationError naming each bad or missing setting (never its value).
 */
export function config(env: Env): Config {
  const hit = parsed.get(env);
  if (hit) return hit;
  const result = v.safeParse(ConfigSchema, env);
  if (!result.success) {
    const problems = result.issues.map((i) => `${v.getDotPath(i) ?? "config"}: ${i.message}`);
    throw new ConfigurationError(`invalid configuration: ${problems.join("; ")}`);
  }
  parsed.set(env, result.output);
  return result.output;
}

export type { Config };
