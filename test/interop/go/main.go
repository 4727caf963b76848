// A hashicorp/yamux peer for gw's interop suite (test/protocol/mux-hashicorp-interop.test.ts).
//
// It speaks yamux over plain TCP, or with `-ws` over one WebSocket (gorilla/websocket, as
// a Go agent or relay would; ws.go): `-listen` accepts one connection as the yamux server,
// `-dial` connects as the client (host:port, or with `-ws` a ws:// URL). `-relay-reset URL`
// plays a hashicorp agent that resets a stream before its hello (see relayReset). Streams
// gw opens are served by their first byte:
//
//	E  echo every byte back, then half-close
//	N  never read (gw's writer must block at the window)
//	F  half-close first: write "bye", Close, then count what gw sends until EOF
//	R  Close and wait: gw never sends FIN, so hashicorp resets after StreamCloseTimeout
//	W  read until the stream fails (gw resets it) and report the error
//	G  read an 8-byte big-endian size, write that many pattern bytes at once, half-close
//	Z  read an 8-byte big-endian size, write that many zero bytes in 256 KiB writes, half-close
//	   (bench/tools/interop-throughput.mjs: nothing but the sending is timed)
//
// Lines on stdin drive what this side does itself; each answer is one JSON line on stdout.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

var out = json.NewEncoder(os.Stdout)
var outMu sync.Mutex

func report(v map[string]interface{}) {
	outMu.Lock()
	defer outMu.Unlock()
	_ = out.Encode(v)
}

// pattern is the byte sequence both sides generate to check a transfer without sending a checksum.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte((i*31 + i/251) % 251)
	}
	return b
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func serve(s *yamux.Stream) {
	cmd := make([]byte, 1)
	if _, err := io.ReadFull(s, cmd); err != nil {
		s.Close()
		return
	}
	switch cmd[0] {
	case 'E':
		_, _ = io.Copy(s, s)
		s.Close()
	case 'N':
		<-s.Session().CloseChan()
	case 'F':
		_, _ = s.Write([]byte("bye"))
		s.Close()
		n, err := io.Copy(io.Discard, s)
		report(map[string]interface{}{"event": "F", "bytes": n, "err": errString(err)})
	case 'R':
		s.Close()
	case 'W':
		n, err := io.Copy(io.Discard, s)
		report(map[string]interface{}{"event": "W", "bytes": n, "err": errString(err)})
	case 'Z':
		size := make([]byte, 8)
		if _, err := io.ReadFull(s, size); err != nil {
			s.Close()
			return
		}
		chunk := make([]byte, 256*1024)
		for left := int(binary.BigEndian.Uint64(size)); left > 0; left -= len(chunk) {
			if left < len(chunk) {
				chunk = chunk[:left]
			}
			if _, err := s.Write(chunk); err != nil {
				break
			}
		}
		s.Close()
	case 'G':
		size := make([]byte, 8)
		if _, err := io.ReadFull(s, size); err != nil {
			s.Close()
			return
		}
		_, err := s.Write(pattern(int(binary.BigEndian.Uint64(size))))
		if err != nil {
			report(map[string]interface{}{"event": "G", "err": err.Error()})
		}
		s.Close()
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// echo opens `count` streams, `conc` at once; each sends E + size pattern bytes, half-closes,
// and checks what comes back by digest.
func echo(session *yamux.Session, size, count, conc int) map[string]interface{} {
	data := pattern(size)
	want := digest(data)
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, conc)
	for i := 0; i < count; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := echoOne(session, data, want)
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return map[string]interface{}{"ok": firstErr == nil, "err": errString(firstErr), "ms": time.Since(start).Seconds() * 1000}
}

func echoOne(session *yamux.Session, data []byte, want string) error {
	s, err := session.OpenStream()
	if err != nil {
		return err
	}
	defer s.Close()
	errc := make(chan error, 1)
	go func() {
		if _, err := s.Write([]byte{'E'}); err != nil {
			errc <- err
			return
		}
		if _, err := s.Write(data); err != nil {
			errc <- err
			return
		}
		errc <- s.Close()
	}()
	got, err := io.ReadAll(s)
	if werr := <-errc; werr != nil {
		return werr
	}
	if err != nil {
		return err
	}
	if len(got) != len(data) || digest(got) != want {
		return fmt.Errorf("echo of %d bytes came back as %d bytes, digest %s", len(data), len(got), digest(got))
	}
	return nil
}

func command(session *yamux.Session, line string) map[string]interface{} {
	f := strings.Fields(line)
	arg := func(i, def int) int {
		if len(f) > i {
			if v, err := strconv.Atoi(f[i]); err == nil {
				return v
			}
		}
		return def
	}
	switch f[0] {
	case "echo":
		return echo(session, arg(1, 0), arg(2, 1), arg(3, 1))
	case "opens":
		// `count` opens at once, each written to and closed; timed until all are answered.
		return echo(session, 0, arg(1, 1024), arg(1, 1024))
	case "ping":
		rtt, err := session.Ping()
		return map[string]interface{}{"ok": err == nil, "err": errString(err), "ms": rtt.Seconds() * 1000}
	case "streams":
		return map[string]interface{}{"ok": true, "streams": session.NumStreams()}
	case "goaway":
		err := session.GoAway()
		return map[string]interface{}{"ok": err == nil, "err": errString(err)}
	case "open":
		// After the peer's GoAway, an open must fail.
		s, err := session.OpenStream()
		if err == nil {
			_, err = s.Write([]byte{'E'})
			if err == nil {
				_, err = io.ReadAll(s)
			}
		}
		return map[string]interface{}{"ok": err == nil, "err": errString(err)}
	case "nonread":
		// gw's 'N' stream never reads: count what can be written before writes block.
		s, err := session.OpenStream()
		if err != nil {
			return map[string]interface{}{"ok": false, "err": err.Error()}
		}
		_, _ = s.Write([]byte{'N'})
		_ = s.SetWriteDeadline(time.Now().Add(time.Duration(arg(1, 500)) * time.Millisecond))
		n, err := s.Write(make([]byte, 8<<20))
		return map[string]interface{}{"ok": errors.Is(err, yamux.ErrTimeout), "written": n, "err": errString(err)}
	case "push":
		// Into gw's 'B' stream, which pauses: `size` pattern bytes in one write (hashicorp
		// sends frames as large as the window allows), then half-close. Blocks until gw
		// has read everything, so the test sends it without waiting for the answer.
		s, err := session.OpenStream()
		if err != nil {
			return map[string]interface{}{"ok": false, "err": err.Error()}
		}
		if _, err = s.Write([]byte{'B'}); err == nil {
			_, err = s.Write(pattern(arg(1, 8<<20)))
		}
		if err == nil {
			err = s.Close()
		}
		return map[string]interface{}{"ok": err == nil, "err": errString(err)}
	case "close":
		err := session.Close()
		return map[string]interface{}{"ok": err == nil, "err": errString(err)}
	}
	return map[string]interface{}{"ok": false, "err": "unknown command " + f[0]}
}

// goToGo measures hashicorp against itself: one stream, `n` bytes, over loopback TCP
// (or one loopback WebSocket).
func goToGo(n int, overWS bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	config := yamux.DefaultConfig()
	config.LogOutput = io.Discard
	done := make(chan time.Duration)
	go func() {
		var conn net.Conn
		if overWS {
			conn, err = acceptWS(ln)
		} else {
			conn, err = ln.Accept()
		}
		if err != nil {
			panic(err)
		}
		server, _ := yamux.Server(conn, config)
		s, _ := server.AcceptStream()
		start := time.Now()
		got, _ := io.Copy(io.Discard, s)
		if int(got) != n {
			panic(fmt.Sprintf("received %d of %d bytes", got, n))
		}
		done <- time.Since(start)
	}()
	var conn net.Conn
	if overWS {
		conn, err = dialWS("ws://" + ln.Addr().String() + "/")
	} else {
		conn, err = net.Dial("tcp", ln.Addr().String())
	}
	if err != nil {
		panic(err)
	}
	client, _ := yamux.Client(conn, config)
	s, _ := client.OpenStream()
	chunk := make([]byte, 256*1024)
	for sent := 0; sent < n; sent += len(chunk) {
		if n-sent < len(chunk) {
			chunk = chunk[:n-sent]
		}
		if _, err := s.Write(chunk); err != nil {
			panic(err)
		}
	}
	s.Close()
	d := <-done
	report(map[string]interface{}{"bytes": n, "ms": d.Seconds() * 1000})
}

func main() {
	listen := flag.String("listen", "", "accept one TCP connection here as the yamux server")
	dial := flag.String("dial", "", "connect here as the yamux client")
	overWS := flag.Bool("ws", false, "carry yamux over one WebSocket (binary messages) instead of bare TCP")
	resetURL := flag.String("relay-reset", "", "dial this relay agent URL over WebSocket, open the control stream and a second one, let hashicorp reset the second, report, exit")
	selfBytes := flag.Int("throughput", 0, "send this many bytes Go to Go over a loopback TCP pair, report the time, exit")
	flag.Parse()
	if *selfBytes > 0 {
		goToGo(*selfBytes, *overWS)
		return
	}
	if *resetURL != "" {
		relayReset(*resetURL)
		return
	}
	config := yamux.DefaultConfig()
	config.LogOutput = io.Discard
	config.StreamCloseTimeout = 300 * time.Millisecond
	config.EnableKeepAlive = false
	var conn net.Conn
	var err error
	if *listen != "" {
		ln, lerr := net.Listen("tcp", *listen)
		if lerr != nil {
			fmt.Fprintln(os.Stderr, lerr)
			os.Exit(2)
		}
		report(map[string]interface{}{"event": "listening", "port": ln.Addr().(*net.TCPAddr).Port})
		if *overWS {
			conn, err = acceptWS(ln)
		} else {
			conn, err = ln.Accept()
		}
	} else if *overWS {
		conn, err = dialWS(*dial)
	} else {
		conn, err = net.Dial("tcp", *dial)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var session *yamux.Session
	if *listen != "" {
		session, err = yamux.Server(conn, config)
	} else {
		session, err = yamux.Client(conn, config)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	go func() {
		for {
			s, err := session.AcceptStream()
			if err != nil {
				report(map[string]interface{}{"event": "closed", "err": errString(err)})
				return
			}
			go serve(s)
		}
	}()
	report(map[string]interface{}{"event": "ready"})
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if line := strings.TrimSpace(in.Text()); line != "" {
			r := command(session, line)
			r["cmd"] = line
			report(r)
		}
	}
	session.Close()
}
