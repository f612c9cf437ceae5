/**
 * The shape of a command's descriptor (lib/cli/commands.ts declares every command once) and what
 * reads it: the argument parser's option table, the --help text, and the job-file and cluster
 * views of the options. Nothing here loads a model or an image.
 */
import { parse, type Parsed } from './args';

/**
 * An option's value: `bool` a switch; `list` a comma list (lists in job files are joined with
 * commas); `path` a file or folder (relative paths in job files resolve against the file's
 * folder); `int`/`number` a number the command checks the range of; `string` anything else.
 */
export type OptionType = 'string' | 'number' | 'int' | 'bool' | 'list' | 'path';

export interface OptionSpec {
  readonly name: string;
  readonly short?: string;
  readonly type: OptionType;
  /** The value's placeholder in --help (`FILE`, `A,B`); switches have none. */
  readonly metavar?: string;
  /** The --help text; `\n` starts a continuation line at the help column. */
  readonly help: string;
  /** May be given more than once (view --model A --model B). */
  readonly multiple?: boolean;
}

export interface CommandSpec {
  readonly name: string;
  /** The command's line in `featscope --help`: its synopsis and what it does (`\n` continues). */
  readonly synopsis: string;
  readonly summary: string;
  /** The usage line, after `Usage: featscope `. */
  readonly usage: string;
  /** The paragraphs between the usage line and the options. */
  readonly description: string;
  readonly options: readonly OptionSpec[];
  /** What follows the options: outputs, exit status, examples (ends with a newline). */
  readonly epilogue: string;
  /** The column the options' help text starts at. */
  readonly helpColumn: number;
  /** Takes positional arguments. */
  readonly positionals: boolean;
  /** Its positionals are inputs (images, folders, globs; merge's shard folders): a job's `inputs`. */
  readonly inputs?: boolean;
  /** May be a job of `featscope run`. */
  readonly jobs?: boolean;
  /** May run sharded under `featscope k8s-job` and `slurm-job`. */
  readonly cluster?: boolean;
}

/** A parsed option: a switch is a boolean, a repeatable option a list, any other a string. */
type ValueOf<S> = S extends { type: 'bool' } ? boolean : S extends { multiple: true } ? string[] : string;

/** The parsed values of a command's declared options (each may be absent) and of the common ones. */
export type ValuesOf<C extends CommandSpec> = {
  [S in C['options'][number] as S['name']]?: ValueOf<S>;
} & { help?: boolean; threads?: string };

/** The options of a command (one value each for the common -h/--help and --threads too) for util.parseArgs. */
export function parseArgsOptions(
  spec: Pick<CommandSpec, 'options'>,
): Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> {
  const table: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const o of spec.options) {
    table[o.name] = {
      type: o.type === 'bool' ? 'boolean' : 'string',
      ...(o.short ? { short: o.short } : {}),
      ...(o.multiple ? { multiple: true } : {}),
    };
  }
  return table;
}

/** Reads a command line against the command's descriptor (USAGE errors for unknown options, a missing value, ...). */
export function parseCommand<const C extends CommandSpec>(
  spec: C,
  argv: string[],
): { values: ValuesOf<C>; positionals: string[] } {
  const parsed: Parsed = parse(spec.name, argv, parseArgsOptions(spec), spec.positionals);
  // parse() checks at run time exactly the options declared in `spec`, whose names and types ValuesOf reads.
  return parsed as unknown as { values: ValuesOf<C>; positionals: string[] };
}

function optionLines(o: OptionSpec, column: number): string {
  const head = `  ${o.short ? `-${o.short}, ` : '    '}--${o.name}${o.metavar ? ` ${o.metavar}` : ''}`;
  if (!o.help) return `${head}\n`;
  const [first, ...rest] = o.help.split('\n');
  const indent = ' '.repeat(column);
  let text = head.length < column ? `${head.padEnd(column)}${first}\n` : `${head}\n${indent}${first}\n`;
  for (const line of rest) text += `${indent}${line}\n`;
  return text;
}

/** `featscope <command> --help`. */
export function helpText(spec: CommandSpec): string {
  return (
    `Usage: featscope ${spec.usage}\n\n${spec.description}\n\nOptions:\n` +
    spec.options.map((o) => optionLines(o, spec.helpColumn)).join('') +
    (spec.epilogue ? `\n${spec.epilogue}` : '')
  );
}

/** Prints the command's --help on stdout; the exit status of a help request. */
export function printHelp(spec: CommandSpec): number {
  process.stdout.write(helpText(spec));
  return 0;
}

/** The commands' lines of `featscope --help`. */
export function commandList(specs: readonly CommandSpec[], column = 28): string {
  let text = '';
  for (const s of specs) {
    const head = `  ${s.synopsis}`;
    const [first, ...rest] = s.summary.split('\n');
    text += `${head.length < column ? head.padEnd(column) : `${head}  `}${first}\n`;
    for (const line of rest) text += `${' '.repeat(column)}${line}\n`;
  }
  return text;
}

/** A shared option with this command's own help text. */
export function withHelp<const O extends OptionSpec>(option: O, help: string): O {
  return { ...option, help };
}
