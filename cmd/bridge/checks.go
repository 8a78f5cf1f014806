package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/nats-io/nats.go"
)

// weakKeyReason says why a session key is too weak to use, "" when it is not.
// The key itself never appears in the reason.
func weakKeyReason(key string) string {
	if len(key) < 32 {
		return fmt.Sprintf("%d characters, want at least 32", len(key))
	}
	low := strings.ToLower(key)
	for _, p := range []string{"change-me", "changeme", "replace-me", "replaceme", "placeholder", "example", "your-", "secret", "password", "xxxx"} {
		if strings.Contains(low, p) {
			return fmt.Sprintf("it contains %q, a placeholder", p)
		}
	}
	distinct := map[byte]bool{}
	for i := 0; i < len(key); i++ {
		distinct[key[i]] = true
	}
	if len(distinct) < 10 {
		return fmt.Sprintf("only %d distinct characters, want at least 10", len(distinct))
	}
	return ""
}

// checkSessionKey refuses a weak key; an empty (or all white space) key
// is allowed (the saved session is stored in plaintext, with a warning).
func (f *flagSet) checkSessionKey(name string, key *string) error {
	// Judged without surrounding white space, but used as given: a key with a
	// trailing newline (a Secret made from a file) keeps opening the sessions
	// it sealed.
	trimmed := strings.TrimSpace(*key)
	if trimmed == "" {
		*key = ""
		return nil
	}
	if r := weakKeyReason(trimmed); r != "" {
		return f.badf(name, "too weak (%s); make one with: head -c 32 /dev/urandom | base64", r)
	}
	return nil
}

// checkReadable checks that a file flag names a regular file this process can read.
func (f *flagSet) checkReadable(name, path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, f.badf(name, "%s: %v", path, err)
	}
	return data, nil
}

// checkNATSFiles checks the credentials and TLS files of the NATS connection
// before anything starts: each exists and parses.
func (f *flagSet) checkNATSFiles(cfg *config) error {
	if cfg.NATSCreds != "" && cfg.NATSNkey != "" {
		return f.badf("nats-nkey", "give either --nats-creds or --nats-nkey, not both")
	}
	if cfg.NATSCreds != "" {
		data, err := f.checkReadable("nats-creds", cfg.NATSCreds)
		if err != nil {
			return err
		}
		if !strings.Contains(string(data), "NATS USER JWT") || !strings.Contains(string(data), "USER NKEY SEED") {
			return f.badf("nats-creds", "%s: not a NATS credentials file (want a user JWT and its nkey seed, as `nsc generate creds` writes)", cfg.NATSCreds)
		}
	}
	if cfg.NATSNkey != "" {
		if _, err := f.checkReadable("nats-nkey", cfg.NATSNkey); err != nil {
			return err
		}
		if _, err := nats.NkeyOptionFromSeed(cfg.NATSNkey); err != nil {
			return f.badf("nats-nkey", "%s: not a user nkey seed file (want a seed starting with SU…): %v", cfg.NATSNkey, err)
		}
	}
	if cfg.NATSTLSCA != "" {
		data, err := f.checkReadable("nats-tls-ca", cfg.NATSTLSCA)
		if err != nil {
			return err
		}
		if !x509.NewCertPool().AppendCertsFromPEM(data) {
			return f.badf("nats-tls-ca", "%s: no PEM certificate in it", cfg.NATSTLSCA)
		}
	}
	switch {
	case cfg.NATSTLSCert != "" && cfg.NATSTLSKey == "":
		return f.badf("nats-tls-key", "required with --nats-tls-cert (the client certificate's private key)")
	case cfg.NATSTLSCert == "" && cfg.NATSTLSKey != "":
		return f.badf("nats-tls-cert", "required with --nats-tls-key (the client certificate)")
	case cfg.NATSTLSCert != "":
		if _, err := f.checkReadable("nats-tls-cert", cfg.NATSTLSCert); err != nil {
			return err
		}
		if _, err := f.checkReadable("nats-tls-key", cfg.NATSTLSKey); err != nil {
			return err
		}
		if _, err := tls.LoadX509KeyPair(cfg.NATSTLSCert, cfg.NATSTLSKey); err != nil {
			return f.badf("nats-tls-cert", "%s with --nats-tls-key %s: %v", cfg.NATSTLSCert, cfg.NATSTLSKey, err)
		}
	}
	return nil
}

// listenError words a listen failure: "address in use" for the common case.
func listenError(what, addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s %s: address in use (another process listens there; choose another port)", what, addr)
	}
	return fmt.Errorf("%s %s: %w", what, addr, err)
}

// checkFreePort fails with "address in use" when host:port (a fixed port) is
// taken, before the embedded nats-server tries it and only reports that it is
// not ready.
func checkFreePort(what, hostPort string) error {
	_, p, err := net.SplitHostPort(hostPort)
	if err != nil {
		return err
	}
	if n, _ := strconv.Atoi(p); n == 0 {
		return nil
	}
	ln, err := net.Listen("tcp", hostPort)
	if err != nil {
		return listenError(what, hostPort, err)
	}
	return ln.Close()
}

// sizeValue is a flag of a byte size: a number of bytes, or one with a unit
// (KB, MB, GB: powers of 1000; KiB, MiB, GiB: powers of 1024); -1 is no limit.
type sizeValue struct{ p *int64 }

func (s sizeValue) String() string {
	if s.p == nil {
		return ""
	}
	return formatSize(*s.p)
}

func (s sizeValue) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s.p = n
	return nil
}

func parseSize(v string) (int64, error) {
	v = strings.TrimSpace(v)
	if v == "-1" {
		return -1, nil
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSpace(strings.TrimSuffix(v, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, errors.New("want a positive size such as 1GiB, 500MB or 1048576, or -1 for no limit")
	}
	return n * mult, nil
}

func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n > 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
