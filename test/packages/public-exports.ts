/**
 * The public surface of a package entry, types included, read with the TypeScript compiler: what the
 * API reference must document (api-docs.test.ts) and what the example app must use (packages.test.ts).
 * A runtime import would see only values; interfaces and type aliases are half of the surface.
 */
import ts from "typescript";

export interface PublicExport {
  name: string;
  /** "value": exists at run time (function, class, constant); "type": types only. */
  kind: "value" | "type";
}

/** Every export of `entry` (a .ts or .d.ts file), sorted by name. Throws with tsc's messages if it does not compile. */
export function publicExports(entry: string, options: ts.CompilerOptions): PublicExport[] {
  const program = ts.createProgram([entry], { ...options, noEmit: true });
  const diagnostics = ts.getPreEmitDiagnostics(program);
  if (diagnostics.length > 0) {
    const host = { getCanonicalFileName: (f: string) => f, getCurrentDirectory: () => process.cwd(), getNewLine: () => "\n" };
    throw new Error(`${entry} does not compile:\n${ts.formatDiagnostics(diagnostics, host)}`);
  }
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(entry);
  const moduleSymbol = source === undefined ? undefined : checker.getSymbolAtLocation(source);
  if (moduleSymbol === undefined) throw new Error(`${entry} is not a module`);
  return checker
    .getExportsOfModule(moduleSymbol)
    .map((symbol) => {
      const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
      return { name: symbol.getName(), kind: target.flags & ts.SymbolFlags.Value ? ("value" as const) : ("type" as const) };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** The compiler options of a tsconfig file, as tsc reads them. */
export function compilerOptionsOf(tsconfig: string): ts.CompilerOptions {
  const parsed = ts.getParsedCommandLineOfConfigFile(tsconfig, {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
      throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n"));
    },
  });
  if (parsed === undefined) throw new Error(`${tsconfig} could not be read`);
  return parsed.options;
}
