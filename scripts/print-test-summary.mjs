// Prints vitest's JSON report as one plain closing line, "N passed, N failed, N skipped", so a CI
// reader that does not know vitest's own summary can still count the tests. Failing tests are named
// above it with the first line of their error: a CI record keeps only the tail of a long run, and the
// failure itself may have scrolled far above it.
import { readFileSync } from "node:fs";

const report = JSON.parse(readFileSync(process.argv[2] ?? ".tmp/vitest.json", "utf8"));
const skipped = report.numPendingTests + report.numTodoTests;
const relativeName = (name) => name.replace(/^.*?[\\/](test[\\/])/, "$1");
const firstLine = (text) => String(text ?? "").split("\n").find((line) => line.trim() !== "")?.trim().slice(0, 300) ?? "";

// The end-to-end suites take the longest; say how long each file took (its tests ran one after another).
const seconds = (result) => ((result.endTime ?? 0) - (result.startTime ?? 0)) / 1000;
const e2e = report.testResults.filter((result) => /[\\/]test[\\/]e2e[\\/]/.test(result.name));
if (e2e.length > 0) {
  console.log("end-to-end suites:");
  for (const result of e2e) {
    console.log(`  ${relativeName(result.name)}: ${seconds(result).toFixed(1)} s, ${result.status}`);
  }
  console.log(`  total: ${e2e.reduce((sum, result) => sum + seconds(result), 0).toFixed(1)} s`);
}

const failures = [];
for (const file of report.testResults) {
  const failedTests = (file.assertionResults ?? []).filter((test) => test.status === "failed");
  for (const test of failedTests) {
    failures.push(`  ${relativeName(file.name)} > ${test.fullName}: ${firstLine(test.failureMessages?.[0])}`);
  }
  // A file that failed with no failed test in it did not load or failed in a hook.
  if (file.status === "failed" && failedTests.length === 0) {
    failures.push(`  ${relativeName(file.name)}: ${firstLine(file.message) || "the file failed outside its tests"}`);
  }
}
if (failures.length > 0) {
  console.log("failed:");
  for (const line of failures) console.log(line);
}
console.log(`tests: ${report.numPassedTests} passed, ${report.numFailedTests} failed, ${skipped} skipped`);
process.exit(failures.length > 0 || report.numTotalTests === 0 ? 1 : 0);
