//! External tables reach only the directories the operator allows: a
//! symbolic link inside an allowed directory does not lead out of it.

use crate::support::{QuiverServer, one};

#[tokio::test(flavor = "multi_thread")]
async fn a_symbolic_link_out_of_an_allowed_directory_is_refused() {
    let (data, server) = QuiverServer::start_fresh();
    let client = server.connect().await;
    // `import` in the data directory is allowed; a link in it to the
    // directory above (the data directory, with the catalog) is not a way
    // out, nor is a link to /etc.
    let import = data.path().join("import");
    std::os::unix::fs::symlink(data.path(), import.join("up")).expect("symlink");
    std::os::unix::fs::symlink("/etc", import.join("etc")).expect("symlink");
    std::fs::write(import.join("ok.csv"), "a\n1\n").expect("csv");
    for location in [
        import.join("etc").join("passwd"),
        import.join("up").join("catalog"),
        import.join("up/import/../catalog"),
    ] {
        let create = format!(
            "CREATE EXTERNAL TABLE p (line TEXT) STORED AS CSV LOCATION '{}'",
            location.display()
        );
        let error = client
            .batch_execute(&create)
            .await
            .expect_err("outside the allowed directories");
        assert_eq!(
            error.code().map(|c| c.code()),
            Some("42501"),
            "{location:?}: {error}"
        );
    }
    // A file really inside is read.
    client
        .batch_execute(&format!(
            "CREATE EXTERNAL TABLE ok STORED AS CSV LOCATION '{}' OPTIONS ('format.has_header' 'true')",
            import.join("ok.csv").display()
        ))
        .await
        .expect("inside the import directory");
    assert_eq!(one(&client, "SELECT a FROM ok").await.as_deref(), Some("1"));
    server.stop();
}
