use std::time::SystemTime;

use super::*;

fn touch(path: &Path, age: Duration) {
    std::fs::write(path, b"decrypted bytes").unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

#[tokio::test]
async fn the_sweep_removes_stale_part_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    touch(&tmp.join("old.part"), STALE_PART + Duration::from_secs(60));
    touch(&tmp.join("fresh.part"), Duration::from_secs(60));
    touch(&tmp.join("old.txt"), STALE_PART * 2);
    assert_eq!(sweep_parts(&tmp, STALE_PART).await, 1);
    assert!(!tmp.join("old.part").exists(), "a day-old part is swept");
    assert!(tmp.join("fresh.part").exists(), "a part a running download may resume stays");
    assert!(tmp.join("old.txt").exists(), "only part files are touched");
    // Nothing left to fetch: every part goes.
    assert_eq!(sweep_parts(&tmp, Duration::ZERO).await, 1);
    assert!(!tmp.join("fresh.part").exists());
    assert_eq!(sweep_parts(&dir.path().join("missing"), Duration::ZERO).await, 0);
}

#[tokio::test]
async fn a_download_that_ends_for_good_deletes_its_part() {
    let dir = tempfile::tempdir().unwrap();
    let opts = FileOptions::new(dir.path().to_path_buf());
    std::fs::create_dir(dir.path().join("tmp")).unwrap();
    let part = part_path(&opts, "Att/1");
    for outcome in
        [FileOutcome::Refused { error: "gone".into() }, FileOutcome::TooLarge { bytes: 1 << 40 }, FileOutcome::Failed { error: "not worth retrying".into() }]
    {
        std::fs::write(&part, b"half a photo").unwrap();
        let kept = ended(&part, outcome.clone()).await;
        assert_eq!(kept, outcome);
        assert!(!part.exists(), "{outcome:?} left its part file");
    }
    // A stored file's part was moved away already; a same-named part is none of its business.
    std::fs::write(&part, b"another download").unwrap();
    ended(&part, FileOutcome::Stored { sha256: "00".into(), bytes: 1 }).await;
    assert!(part.exists());
}
