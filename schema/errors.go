package schema

import "errors"

// Sentinel errors, for use with errors.Is.
var (
	// ErrInvalidKind: a kind is not one of the Kind constants (or, where a
	// sendable kind is required, not friend, group, discuss or sess).
	ErrInvalidKind = errors.New("schema: invalid kind")
	// ErrInvalidSubject: a subject, a subject prefix or a subject token is
	// malformed, or a subject does not belong to the expected family.
	ErrInvalidSubject = errors.New("schema: invalid subject")
	// ErrUnsupportedContentType: a Content-Type is neither JSON nor msgpack.
	ErrUnsupportedContentType = errors.New("schema: unsupported content type")
	// ErrUnsupportedVersion: a message carries a "v" this package does not know.
	ErrUnsupportedVersion = errors.New("schema: unsupported version")
	// ErrInvalidEvent: an event body could not be decoded.
	ErrInvalidEvent = errors.New("schema: invalid event")
	// ErrInvalidRequest: a send request is malformed or incomplete. Every
	// error from DecodeRequest and Request.Validate matches it and is a
	// *ValidationError.
	ErrInvalidRequest = errors.New("schema: invalid request")
)
