// Prints vitest's JSON report as one plain closing line, "N passed, N failed, N skipped", so a CI
// reader that does not know vitest's own summary can still count the tests.
import { readFileSync } from "node:fs";

const report = JSON.parse(readFileSync(process.argv[2] ?? ".tmp/vitest.json", "utf8"));
const skipped = report.numPendingTests + report.numTodoTests;

// The end-to-end suites take the longest; say how long each file took (its tests ran one after another).
const seconds = (result) => ((result.endTime ?? 0) - (result.startTime ?? 0)) / 1000;
const e2e = report.testResults.filter((result) => /[\\/]test[\\/]e2e[\\/]/.test(result.name));
if (e2e.length > 0) {
  console.log("end-to-end suites:");
  for (const result of e2e) {
    console.log(`  ${result.name.replace(/^.*[\\/](test[\\/]e2e[\\/])/, "$1")}: ${seconds(result).toFixed(1)} s, ${result.status}`);
  }
  console.log(`  total: ${e2e.reduce((sum, result) => sum + seconds(result), 0).toFixed(1)} s`);
}
console.log(`tests: ${report.numPassedTests} passed, ${report.numFailedTests} failed, ${skipped} skipped`);
process.exit(report.numFailedTests > 0 || report.numTotalTests === 0 ? 1 : 0);
