//! Service files (`kind: service`): `flowrun check` reports every problem — the shape, the
//! expressions over `event` and `payload`, and the handlers' inputs against their flows — at
//! its `file:line:col`. Each file under tests/services/ is checked as `flowrun check` would;
//! the snapshot is the exact text. The shipped service file has no problem.

use flowrun::flow::Source;

#[test]
fn service_files_report_every_problem() {
    insta::glob!("services/*.service.yaml", |path| {
        let name = path.file_name().unwrap().to_string_lossy();
        let source = Source::read(std::path::Path::new(&format!("tests/services/{name}"))).unwrap();
        let diagnostics = flowrun::service::check_file(&source).expect("a service file");
        let rendered: String = diagnostics.iter().map(|d| d.render(&source) + "\n").collect();
        insta::assert_snapshot!(rendered);
    });
}

#[test]
fn the_shipped_service_file_is_valid_and_reads_as_a_service() {
    let source = Source::read(std::path::Path::new("flows/transfer.service.yaml")).unwrap();
    let service = flowrun::service::load(&source).unwrap();
    assert_eq!(service.on[0].flow, "transfer.yaml");
    assert!(service.sources.pubsub.is_some());
    // A flow is not a service file.
    let flow = Source::read(std::path::Path::new("flows/transfer.yaml")).unwrap();
    assert!(flowrun::service::check_file(&flow).is_none());
}
