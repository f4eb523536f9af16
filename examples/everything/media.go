package main

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/png"
)

// redPixelPNG encodes a 1x1 red PNG: the smallest honest image content.
func redPixelPNG() []byte {
	img := image.NewRGBA(image.Rect(0, 0, 1, 1))
	img.Set(0, 0, color.RGBA{R: 255, A: 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		// Encoding an in-memory 1x1 image cannot fail short of a broken
		// standard library.
		panic(err)
	}
	return buf.Bytes()
}

// silentWAV builds a mono 8 kHz, 16-bit PCM WAV file holding samples
// samples of silence.
func silentWAV(samples int) []byte {
	const (
		sampleRate    = 8000
		bitsPerSample = 16
		channels      = 1
	)
	blockAlign := channels * bitsPerSample / 8
	dataLen := samples * blockAlign
	var buf bytes.Buffer
	le := func(v any) { _ = binary.Write(&buf, binary.LittleEndian, v) }
	buf.WriteString("RIFF")
	le(uint32(36 + dataLen))
	buf.WriteString("WAVE")
	buf.WriteString("fmt ")
	le(uint32(16)) // size of the PCM fmt chunk
	le(uint16(1))  // PCM
	le(uint16(channels))
	le(uint32(sampleRate))
	le(uint32(sampleRate * blockAlign))
	le(uint16(blockAlign))
	le(uint16(bitsPerSample))
	buf.WriteString("data")
	le(uint32(dataLen))
	buf.Write(make([]byte, dataLen))
	return buf.Bytes()
}
