use super::*;

fn addresses(store: &Datastore) -> Vec<String> {
    store
        .snapshot()
        .endpoints()
        .iter()
        .map(|e| e.address_text().to_owned())
        .collect()
}

#[test]
fn file_formats() {
    let yaml = "- 10.0.0.1:8000\n- address: 10.0.0.2:8000\n  labels: {zone: a}\n- address: \"[::1]:9000\"\n  name: local\n";
    let specs = parse_endpoints_file(yaml).expect("yaml list");
    assert_eq!(specs.len(), 3);
    assert_eq!(specs[1].labels.get("zone").map(String::as_str), Some("a"));
    assert_eq!(specs[2].name, "local");
    let json = r#"{"endpoints": ["127.0.0.1:8001", {"address": "127.0.0.1:8002"}]}"#;
    assert_eq!(parse_endpoints_file(json).expect("json").len(), 2);
    assert!(parse_endpoints_file("[]").expect("empty list").is_empty());
}

#[test]
fn file_errors_name_the_entry() {
    let cases = [
        (
            "- 10.0.0.1\n",
            "entry 0: address \"10.0.0.1\" is not ip:port",
        ),
        (
            "- 10.0.0.1:80\n- 10.0.0.1:80\n",
            "entry 1: address 10.0.0.1:80 is listed twice",
        ),
        ("- address: 10.0.0.1:80\n  port: 3\n", "expected a list"),
        ("just text", "expected a list"),
    ];
    for (text, expected) in cases {
        let err = parse_endpoints_file(text).expect_err(text);
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn static_list_syncs_the_pool() {
    let store = Datastore::new(10);
    assert!(!store.pool_synced());
    let list: Vec<SocketAddr> = ["127.0.0.1:9001", "127.0.0.1:9002"]
        .iter()
        .map(|a| a.parse().expect("addr"))
        .collect();
    load_static(&store, &list).expect("load");
    assert!(store.pool_synced());
    assert_eq!(addresses(&store), ["127.0.0.1:9001", "127.0.0.1:9002"]);
    assert_eq!(store.pool().expect("pool").target_ports, vec![9001, 9002]);
}

#[test]
fn file_reload_keeps_last_good_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("endpoints.yaml");
    std::fs::write(&path, "- 10.0.0.1:8000\n").expect("write");
    let store = Arc::new(Datastore::new(2));
    let mut watcher =
        EndpointsFileWatcher::load(&path, EndpointsFile(Arc::clone(&store))).expect("load");
    assert_eq!(addresses(&store), ["10.0.0.1:8000"]);
    let first_id = store.snapshot().endpoints()[0].id();

    // Unchanged content is not re-applied.
    assert!(!watcher.reload_if_changed());

    // A valid edit adds an endpoint and keeps the existing one's identity.
    std::fs::write(&path, "- 10.0.0.1:8000\n- 10.0.0.2:8000\n").expect("write");
    assert!(watcher.reload_if_changed());
    assert_eq!(addresses(&store), ["10.0.0.1:8000", "10.0.0.2:8000"]);
    assert_eq!(store.snapshot().endpoints()[0].id(), first_id);

    // Bad edits (syntax, over --max-endpoints, file gone) keep the last good endpoints.
    for bad in [
        "- not-an-address\n",
        "- 10.0.0.1:1\n- 10.0.0.1:2\n- 10.0.0.1:3\n",
    ] {
        std::fs::write(&path, bad).expect("write");
        assert!(!watcher.reload_if_changed(), "{bad}");
        assert_eq!(addresses(&store), ["10.0.0.1:8000", "10.0.0.2:8000"]);
    }
    std::fs::remove_file(&path).expect("remove");
    assert!(!watcher.reload_if_changed());
    assert_eq!(store.snapshot().len(), 2);

    // Fixing the file applies again.
    std::fs::write(&path, "- 10.0.0.3:8000\n").expect("write");
    assert!(watcher.reload_if_changed());
    assert_eq!(addresses(&store), ["10.0.0.3:8000"]);
}

#[test]
fn missing_file_at_start_is_an_error() {
    let store = Arc::new(Datastore::new(10));
    let err = EndpointsFileWatcher::load(
        std::path::Path::new("/nonexistent/eps.yaml"),
        EndpointsFile(store),
    )
    .err()
    .expect("must fail")
    .to_string();
    assert!(
        err.contains("cannot read endpoints file /nonexistent/eps.yaml"),
        "{err}"
    );
}

#[test]
fn invalid_file_at_start_names_the_file_and_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("eps.yaml");
    std::fs::write(&path, "- 10.0.0.1\n").expect("write");
    let err = EndpointsFileWatcher::load(&path, EndpointsFile(Arc::new(Datastore::new(10))))
        .err()
        .expect("must fail")
        .to_string();
    assert!(err.starts_with("endpoints file "), "{err}");
    assert!(
        err.contains("entry 0: address \"10.0.0.1\" is not ip:port"),
        "{err}"
    );
}
