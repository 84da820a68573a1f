//! The inbox log's tests: frames, chunks (plain and compressed), segments, spares and retirement.
use super::*;

fn key(seq: u64) -> Vec<u8> {
    let mut k = b"00D7F00000107XsUAI".to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

#[test]
fn frames_read_back_and_a_torn_or_zero_tail_ends_the_log() {
    let mut buf = Vec::new();
    push_frame(&mut buf, &key(1), b"first");
    push_frame(&mut buf, &key(2), b"second");
    let whole = buf.len();
    push_frame(&mut buf, &key(3), b"third, torn");
    let got: Vec<_> = frames(&buf)
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    assert_eq!(got.len(), 3);
    assert_eq!(got[1], (key(2), b"second".to_vec()));
    // A crash mid-write: the last frame is cut short, or its bytes are damaged.
    assert_eq!(frames(&buf[..buf.len() - 3]).count(), 2);
    let mut damaged = buf.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    assert_eq!(frames(&damaged).count(), 2);
    // Zero-filled space after the last write.
    let mut padded = buf[..whole].to_vec();
    padded.extend_from_slice(&[0u8; 64]);
    assert_eq!(frames(&padded).count(), 2);
}

#[test]
fn synced_frames_come_back_from_every_segment_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut wal, found, old) = Wal::open(dir.path()).expect("open");
    assert!(found.is_empty() && old.is_empty());
    let mut buf = Vec::new();
    push_frame(&mut buf, &key(1), b"one");
    wal.append(buf.clone());
    let first = wal.sync().expect("sync").expect("bytes");
    assert_eq!(first.bytes, buf);
    // A round bigger than what is left starts a new segment (of its own size if need be);
    // its bytes do not compress.
    let big = noise(SEGMENT_BYTES as usize);
    let mut buf = Vec::new();
    push_frame(&mut buf, &key(2), &big);
    wal.append(buf.clone());
    let second = wal.sync().expect("sync").expect("bytes");
    assert_eq!(second.segment, first.segment + 1);
    assert!(wal.sync().expect("sync").is_none(), "nothing new to write");
    drop(wal);
    let (wal, found, old) = Wal::open(dir.path()).expect("reopen");
    assert_eq!(old.len(), 2);
    let keys: Vec<_> = found.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys, vec![key(1), key(2)]);
    assert_eq!(found[1].1, big);
    retire_segments(wal.dir(), second.segment, false).expect("retire");
    assert_eq!(segments(dir.path()).expect("list").len(), 1);
    retire_segments(wal.dir(), second.segment, true).expect("retire");
    assert!(segments(dir.path()).expect("list").is_empty());
    // The segment of the usual size is kept as a spare, the oversized one deleted.
    let kinds: Vec<_> = numbered(dir.path())
        .expect("list")
        .into_iter()
        .map(|(n, k, _)| (n, k))
        .collect();
    assert_eq!(kinds, vec![(first.segment, Kind::Spare)]);
}

/// `n` bytes that LZ4 cannot shorten (xorshift).
fn noise(n: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn a_round_is_written_compressed_when_that_is_shorter_and_plain_chunks_still_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut wal, _, _) = Wal::open(dir.path()).expect("open");
    let mut alike = Vec::new();
    for seq in 1..=20 {
        push_frame(
            &mut alike,
            &key(seq),
            b"00D7F00000107XsUAI\x0104l7F000000ABCDEFGH",
        );
    }
    let mut unlike = Vec::new();
    push_frame(&mut unlike, &key(21), &noise(300));
    let segment = write(&mut wal, &alike);
    write(&mut wal, &unlike);
    drop(wal);
    let path = segment_path(dir.path(), segment);
    let bytes = std::fs::read(&path).expect("read");
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("word"));
    let first = word(0);
    assert_ne!(first & COMPRESSED, 0, "alike frames are compressed");
    let first_len = (first & !COMPRESSED) as usize;
    assert!(
        first_len * 3 < alike.len(),
        "{first_len} of {}",
        alike.len()
    );
    let second = word(CHUNK_HEADER + first_len);
    assert_eq!(second & COMPRESSED, 0, "noise is written as it is");
    assert_eq!(second as usize, unlike.len());
    let found = read_segment(&path).expect("read back");
    assert_eq!(found.len(), 21);
    assert!(found.iter().zip(1..).all(|((k, _), seq)| *k == key(seq)));

    // What earlier versions wrote: every chunk plain.
    let mut plain = Vec::new();
    for frames in [&alike, &unlike] {
        let mut chunk = vec![0; CHUNK_HEADER];
        chunk.extend_from_slice(frames);
        let len = u32::try_from(frames.len()).expect("len");
        chunk[..4].copy_from_slice(&len.to_le_bytes());
        chunk[4..8].copy_from_slice(&chunk_crc(7, frames).to_le_bytes());
        plain.extend(chunk);
    }
    assert_eq!(chunk_frames(7, &plain).expect("plain"), found);

    // A compressed body that passes its checksum but does not decompress is an error.
    let mut chunk = unsealed_chunk(&alike);
    let last = chunk.len() - 1;
    chunk[last] ^= 0xff;
    chunk[CHUNK_HEADER..CHUNK_HEADER + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    seal(7, &mut chunk);
    let err = chunk_frames(7, &chunk).expect_err("damaged");
    assert!(err.to_string().contains("does not decompress"), "{err}");
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_frames_come_back_from_their_chunk(
            payloads in proptest::collection::vec(
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..200),
                    "[a-c0-9]{0,300}".prop_map(String::into_bytes),
                ],
                1..12,
            ),
            segment in any::<u64>(),
        ) {
            let mut frames_bytes = Vec::new();
            for (seq, payload) in (1..).zip(&payloads) {
                push_frame(&mut frames_bytes, &key(seq), payload);
            }
            let mut chunk = unsealed_chunk(&frames_bytes);
            seal(segment, &mut chunk);
            prop_assert!(chunk.len() <= CHUNK_HEADER + frames_bytes.len());
            let found = chunk_frames(segment, &chunk).expect("frames");
            let want: Vec<_> = frames(&frames_bytes)
                .map(|(k, v)| (k.to_vec(), v.to_vec()))
                .collect();
            prop_assert_eq!(found, want);
            // Under another segment's number it is not read at all.
            prop_assert!(chunk_frames(segment ^ 1, &chunk).expect("frames").is_empty());
        }

        #[test]
        fn any_bytes_read_as_a_segment_give_frames_or_an_error(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            flag in any::<bool>(),
        ) {
            // With a valid checksum over whatever body follows, so the body is decoded.
            let mut chunk = vec![0; CHUNK_HEADER];
            chunk.extend_from_slice(&bytes);
            if flag {
                chunk[..4].copy_from_slice(&COMPRESSED.to_le_bytes());
            }
            seal(3, &mut chunk);
            let _ = chunk_frames(3, &chunk);
            let _ = chunk_frames(3, &bytes);
        }
    }
}

/// Writes `frames` as one sync and returns its segment.
fn write(wal: &mut Wal, frames: &[u8]) -> u64 {
    wal.append(frames.to_vec());
    wal.sync().expect("sync").expect("synced").segment
}

#[test]
fn a_spare_is_reused_without_being_written_whole_and_its_old_chunks_are_never_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut wal, _, _) = Wal::open(dir.path()).expect("open");
    let frame = |seq: u64| {
        let mut buf = Vec::new();
        push_frame(&mut buf, &key(seq), b"same size");
        buf
    };
    let first = write(&mut wal, &frame(1));
    write(&mut wal, &frame(2));
    write(&mut wal, &frame(3));
    drop(wal);
    // Sled holds them: the segment becomes a spare.
    retire_segments(dir.path(), first, true).expect("retire");
    assert!(segments(dir.path()).expect("list").is_empty());
    let (mut wal, found, _) = Wal::open(dir.path()).expect("reopen");
    assert!(found.is_empty(), "a spare is not part of the log");
    wal.prepare().expect("prepare");
    let reused = segment_path(dir.path(), first + 1);
    assert!(
        !spare_path(dir.path(), first).exists(),
        "the spare was taken"
    );
    let old = std::fs::read(&reused).expect("read");
    assert_eq!(old.len() as u64, SEGMENT_BYTES);
    assert_eq!(
        chunk_frames(first, &old).expect("frames").len(),
        3,
        "its old chunks are still there"
    );
    // A chunk of the same length as the first old one: the second old chunk starts right
    // after it, and is not read, being of another segment number.
    assert_eq!(write(&mut wal, &frame(4)), first + 1);
    drop(wal);
    let (_, found, old) = Wal::open(dir.path()).expect("reopen");
    assert_eq!(old, vec![reused]);
    let keys: Vec<_> = found.into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![key(4)]);
}

#[test]
fn segments_of_earlier_versions_read_as_bare_frames_and_are_deleted_when_retired() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut bare = Vec::new();
    push_frame(&mut bare, &key(1), b"one");
    push_frame(&mut bare, &key(2), b"two");
    bare.resize(SEGMENT_BYTES as usize, 0);
    std::fs::write(dir.path().join(format!("{:020}.log", 7)), &bare).expect("write");
    let (mut wal, found, old) = Wal::open(dir.path()).expect("open");
    assert_eq!(found.len(), 2);
    assert_eq!(old.len(), 1);
    let mut buf = Vec::new();
    push_frame(&mut buf, &key(3), b"three");
    assert_eq!(
        write(&mut wal, &buf),
        8,
        "numbers go on after the old segments'"
    );
    retire_segments(dir.path(), 8, false).expect("retire");
    let left: Vec<_> = numbered(dir.path())
        .expect("list")
        .into_iter()
        .map(|(n, k, _)| (n, k))
        .collect();
    assert_eq!(left, vec![(8, Kind::Chunks)]);
}

#[test]
fn a_failed_sync_keeps_its_bytes_and_writes_them_to_a_new_segment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut wal, _, _) = Wal::open(dir.path()).expect("open");
    let mut buf = Vec::new();
    push_frame(&mut buf, &key(1), b"one");
    wal.append(buf.clone());
    let first = wal.sync().expect("sync").expect("bytes");
    let mut more = Vec::new();
    push_frame(&mut more, &key(2), b"two");
    wal.append(more.clone());
    // Make the next segment's creation fail: a directory already has its name.
    let next = segment_path(dir.path(), first.segment + 1);
    wal.broken = true;
    std::fs::create_dir(&next).expect("block");
    assert!(wal.sync().is_err());
    std::fs::remove_dir(&next).expect("unblock");
    let again = wal.sync().expect("sync").expect("bytes");
    assert!(again.segment > first.segment + 1);
    assert_eq!(again.bytes, more, "the kept bytes are written");
}
