/**
 * A strict command-line flag parser with the behaviour of `node:util`'s
 * `parseArgs({ strict: true, allowPositionals: true })` for the features
 * dhyve's CLI uses: long (`--name`, `--name=value`) and short (`-n value`,
 * `-nvalue`, grouped booleans `-vv`) options, string and boolean types,
 * repeatable options, positionals anywhere, and `--` ending the options.
 * Importing `node:util` would start Deno's Node compatibility layer, which
 * every run would pay for in start-up time and memory. Pure.
 * @module
 */

/** One option's definition. */
export interface FlagSpec {
  /** A string option takes a value; a boolean does not. */
  type: "string" | "boolean";
  /** Its one-letter alias. */
  short?: string;
  /** Whether it may be given more than once (values collect in an array). */
  multiple?: boolean;
}

/** The parsed value of one option. */
type FlagValue<S extends FlagSpec> = S["type"] extends "string"
  ? (S["multiple"] extends true ? string[] : string)
  : (S["multiple"] extends true ? boolean[] : boolean);

/** What {@linkcode parseFlags} returns: option values by name, and the positionals. */
export interface ParsedFlags<O extends Record<string, FlagSpec>> {
  /** The options given; absent ones are undefined. */
  values: { -readonly [K in keyof O]?: FlagValue<O[K]> };
  /** Arguments that are not options, in order. */
  positionals: string[];
}

/** A flag the parser rejects; the message is one line. */
export class FlagError extends Error {
  /** Error name. */
  override name = "FlagError";
}

/**
 * Parses `args` against `options`.
 * @throws {FlagError} for an unknown option, a missing or dash-led value
 *   ("ambiguous") of a string option, or a value given to a boolean one.
 */
export function parseFlags<O extends Record<string, FlagSpec>>(
  args: readonly string[],
  options: O,
): ParsedFlags<O> {
  const values: Record<string, unknown> = {};
  const positionals: string[] = [];
  const specOf = (name: string): FlagSpec | undefined =>
    Object.hasOwn(options, name) ? options[name] : undefined;
  const longOf = (short: string): string | undefined =>
    Object.keys(options).find((name) => options[name]!.short === short);
  const label = (name: string): string => {
    const short = options[name]!.short;
    return short === undefined ? `--${name}` : `-${short}, --${name}`;
  };
  const store = (name: string, rawName: string, value: string | undefined, inline: boolean) => {
    const spec = specOf(name);
    if (spec === undefined) throw new FlagError(unknownOption(rawName));
    if (spec.type === "boolean") {
      if (value !== undefined) {
        throw new FlagError(`Option '${label(name)}' does not take an argument`);
      }
      put(values, name, true, spec.multiple === true);
      return;
    }
    if (value === undefined) {
      throw new FlagError(`Option '${label(name)} <value>' argument missing`);
    }
    if (!inline && value.length > 1 && value.startsWith("-")) {
      throw new FlagError(
        `Option '${rawName}' argument is ambiguous: did you forget its value? ` +
          `To give a value that starts with a dash, write '--${name}=${value}'`,
      );
    }
    put(values, name, value, spec.multiple === true);
  };

  const queue = [...args];
  while (queue.length > 0) {
    const arg = queue.shift()!;
    if (arg === "--") {
      positionals.push(...queue);
      break;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      if (eq >= 0) {
        store(name, `--${name}`, arg.slice(eq + 1), true);
      } else {
        const takesValue = specOf(name)?.type === "string";
        store(name, arg, takesValue ? queue.shift() : undefined, false);
      }
    } else if (arg.startsWith("-") && arg.length > 1) {
      const short = arg[1]!;
      const name = longOf(short);
      if (arg.length === 2) {
        const takesValue = name !== undefined && options[name]!.type === "string";
        store(name ?? short, arg, takesValue ? queue.shift() : undefined, false);
      } else if (name !== undefined && options[name]!.type === "string") {
        store(name, arg.slice(0, 2), arg.slice(2), true); // -m64MiB
      } else {
        // A group of short options: -vv, -vm64MiB (a string option takes the rest).
        const expanded: string[] = [];
        for (let i = 1; i < arg.length; i++) {
          const member = longOf(arg[i]!);
          if (member !== undefined && options[member]!.type === "string" && i < arg.length - 1) {
            expanded.push(`-${arg.slice(i)}`);
            break;
          }
          expanded.push(`-${arg[i]}`);
        }
        queue.unshift(...expanded);
      }
    } else {
      positionals.push(arg);
    }
  }
  return { values: values as ParsedFlags<O>["values"], positionals };
}

function put(
  values: Record<string, unknown>,
  name: string,
  value: unknown,
  multiple: boolean,
): void {
  if (!multiple) {
    values[name] = value;
    return;
  }
  const list = (values[name] ??= []) as unknown[];
  list.push(value);
}

function unknownOption(rawName: string): string {
  return `Unknown option '${rawName}'. To pass an argument that starts with '-' to the ` +
    `kernel, put it after '--'`;
}
