// Package qqclient is a client of the SmartQQ (WebQQ) wire protocol: QR login, session
// save and resume, the poll2 long poll decoded into typed events, sending to friends,
// groups, discussions and temporary sessions, contact lists, and the message content codec.
//
// The wire format follows docs/protocol.md of this repository. By default the client talks
// to the real hosts (ssl.ptlogin2.qq.com, s.web2.qq.com, d1.web2.qq.com); WithBaseURL points
// every endpoint at one base URL instead (the simulator, qqsim).
//
// Errors are classified by meaning and work with errors.Is (ErrSessionLost, ErrRateLimited,
// ErrMaybeSent, …); a *RetcodeError keeps the server's retcode for logs. No error string
// produced by this package contains a credential (cookies, ptwebqq, vfwebqq, psessionid,
// qrsig or the check_sig URL).
package qqclient
