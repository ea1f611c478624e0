//! `--junit FILE`: one test suite for the flow, one test case per step.

use crate::base::secrets::Secrets;
use crate::engine::outcome::{RunReport, StepStatus};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

/// The run as JUnit XML: a skipped or not-run step is a skipped case, a failed one a failure.
/// Secrets are redacted from the whole document.
pub fn junit(report: &RunReport, secrets: &Secrets) -> String {
    let mut suite = TestSuite::new(report.flow.as_str());
    suite.set_time(report.duration);
    for step in &report.steps {
        let status = match &step.status {
            StepStatus::Ok | StepStatus::Stopped => TestCaseStatus::success(),
            StepStatus::Skipped | StepStatus::NotRun => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(step.status.word());
                s
            }
            StepStatus::Failed(e) => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(secrets.redact(&e.to_string()).into_owned());
                s
            }
        };
        let mut case = TestCase::new(step.id.as_str(), status);
        case.set_classname(report.flow.as_str());
        case.set_time(step.duration);
        suite.add_test_case(case);
    }
    let mut out = Report::new("flowrun");
    out.add_test_suite(suite);
    secrets.redact(&out.to_string().unwrap_or_default()).into_owned()
}
