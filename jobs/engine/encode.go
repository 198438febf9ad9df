package engine

import "io"

// encode is the encode stage of every archive a backup stores: the codec
// compresses what the dump writes (pg_dump then runs with -Z0);
// encryption, when on, comes after compression (ciphertext does not
// compress); the checksum is taken last, over the bytes the stores hold,
// while they stream past, so it is known the moment the last byte is
// stored. Each stage is a goroutine joined by a pipe, so memory stays
// bounded whatever the archive's size. stop must be called once the
// stream is no longer read.
//
// The digest also records the chunk sums of the stored bytes and the size
// of src (see ChunkSums), so that a restore can check each chunk before a
// tool sees it and bound what decoding may yield.
func (e *Engine) encode(src io.Reader, phase string, progress ProgressFunc) (digest *digestReader, stop func()) {
	raw := &countReader{r: src}
	encoded, stopEncode := e.codec.encodeStream(raw)
	encrypted, stopEncrypt := e.enc.encryptStream(encoded)
	digest = newDigestReader(encrypted, phase, progress)
	digest.chunks, digest.raw = newChunkHasher(e.chunk), raw
	return digest, func() {
		stopEncrypt()
		stopEncode()
	}
}
