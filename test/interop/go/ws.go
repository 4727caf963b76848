// yamux over one WebSocket, the way gw's links run (an agent dials the relay's
// /_gw/agent): gorilla/websocket, vendored, with each Write of the yamux session sent as
// one binary message and incoming binary messages read as one byte stream. hashicorp
// writes a frame's 12-byte header and its body as two writes, so a message holds one
// header or one body (up to the window gw granted, at most 16 MiB); gw's side
// (packages/protocol/src/mux/websocket-transport.ts) takes any chunking.
package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/yamux"
)

const wsBuffer = 64 * 1024

type wsConn struct {
	ws  *websocket.Conn
	r   io.Reader
	wmu sync.Mutex
}

func (c *wsConn) Read(p []byte) (int, error) {
	for {
		if c.r == nil {
			kind, r, err := c.ws.NextReader()
			if err != nil {
				if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
					return 0, io.EOF
				}
				return 0, err
			}
			if kind != websocket.BinaryMessage {
				return 0, errors.New("a text message on the yamux link")
			}
			c.r = r
		}
		n, err := c.r.Read(p)
		if err == io.EOF {
			c.r = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (c *wsConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *wsConn) Close() error {
	_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	return c.ws.Close()
}

func (c *wsConn) LocalAddr() net.Addr                { return c.ws.LocalAddr() }
func (c *wsConn) RemoteAddr() net.Addr               { return c.ws.RemoteAddr() }
func (c *wsConn) SetDeadline(t time.Time) error      { return c.ws.UnderlyingConn().SetDeadline(t) }
func (c *wsConn) SetReadDeadline(t time.Time) error  { return c.ws.SetReadDeadline(t) }
func (c *wsConn) SetWriteDeadline(t time.Time) error { return c.ws.SetWriteDeadline(t) }

// acceptWS serves HTTP on ln and returns the first WebSocket upgraded on any path.
func acceptWS(ln net.Listener) (net.Conn, error) {
	upgrader := websocket.Upgrader{ReadBufferSize: wsBuffer, WriteBufferSize: wsBuffer}
	conns := make(chan net.Conn, 1)
	errs := make(chan error, 1)
	var once sync.Once
	server := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			once.Do(func() { errs <- err })
			return
		}
		once.Do(func() { conns <- &wsConn{ws: ws} })
	})}
	go func() { _ = server.Serve(ln) }()
	select {
	case c := <-conns:
		return c, nil
	case err := <-errs:
		return nil, err
	}
}

func dialWS(url string) (net.Conn, error) {
	dialer := websocket.Dialer{ReadBufferSize: wsBuffer, WriteBufferSize: wsBuffer, HandshakeTimeout: 5 * time.Second}
	ws, _, err := dialer.Dial(url, nil)
	if err != nil {
		return nil, err
	}
	return &wsConn{ws: ws}, nil
}

// relayReset is an unmodified hashicorp client against a gw relay's agent endpoint that
// never says hello: it opens the control stream and three more, writes to each of those
// and half-closes it. The relay refuses them (RST), or hashicorp resets them itself when
// its StreamCloseTimeout runs out without the relay's FIN. The relay must stay up.
func relayReset(url string) {
	config := yamux.DefaultConfig()
	config.LogOutput = io.Discard
	config.StreamCloseTimeout = 300 * time.Millisecond
	config.EnableKeepAlive = false
	conn, err := dialWS(url)
	if err != nil {
		report(map[string]interface{}{"event": "reset", "ok": false, "err": err.Error()})
		return
	}
	session, err := yamux.Client(conn, config)
	if err != nil {
		report(map[string]interface{}{"event": "reset", "ok": false, "err": err.Error()})
		return
	}
	control, err := session.OpenStream()
	if err != nil {
		report(map[string]interface{}{"event": "reset", "ok": false, "err": err.Error()})
		return
	}
	var results []string
	for i := 0; i < 3; i++ {
		s, err := session.OpenStream()
		if err != nil {
			results = append(results, "open: "+err.Error())
			continue
		}
		_, _ = s.Write([]byte("x"))
		_ = s.Close()
		_ = s.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = io.Copy(io.Discard, s)
		results = append(results, errString(err))
	}
	// Past the close timeout, so every RST hashicorp would send has gone.
	time.Sleep(3 * config.StreamCloseTimeout)
	report(map[string]interface{}{"event": "reset", "ok": true, "streams": results, "control": control.StreamID(), "open": !session.IsClosed()})
	session.Close()
}
