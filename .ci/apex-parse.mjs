// Parses every Apex class (.cls) and trigger (.trigger) under the given directories with the Apex
// grammar of @apexdevtools/apex-parser (ANTLR). Any lexer or parser error, or no file found at
// all, exits non-zero. Usage: node .ci/apex-parse.mjs DIR...
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ApexErrorListener, ApexParserFactory } from "@apexdevtools/apex-parser";

class Collect extends ApexErrorListener {
  constructor() {
    super();
    this.errors = [];
  }

  apexSyntaxError(line, column, msg) {
    // ANTLR lists every token it would have accepted; the first words say what is wrong.
    const short = msg.length > 160 ? `${msg.slice(0, 160)}…` : msg;
    this.errors.push(`${line}:${column} ${short}`);
  }
}

function apexFiles(dir) {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.(cls|trigger)$/.test(e.name))
    .map((e) => join(e.parentPath ?? e.path, e.name))
    .sort();
}

const dirs = process.argv.slice(2);
if (dirs.length === 0) {
  console.error("usage: node .ci/apex-parse.mjs DIR...");
  process.exit(2);
}
const files = dirs.flatMap(apexFiles);
if (files.length === 0) {
  console.error(`apex: no .cls or .trigger file under ${dirs.join(" ")}`);
  process.exit(1);
}
let failed = 0;
for (const file of files) {
  const listener = new Collect();
  const { parser } = ApexParserFactory.createLexerAndParser(readFileSync(file, "utf8"), listener);
  if (file.endsWith(".trigger")) {
    parser.triggerUnit();
  } else {
    parser.compilationUnit();
  }
  for (const error of listener.errors) {
    console.error(`${file}:${error}`);
  }
  if (listener.errors.length > 0) {
    failed += 1;
  }
}
console.log(`apex: ${files.length} files parsed, ${failed} with syntax errors`);
process.exit(failed === 0 ? 0 : 1);
