package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestWire checks bench's own HTTP/1.1 client against net/http's server:
// the replies it reads, and that it keeps one connection alive.
func TestWire(t *testing.T) {
	var conns int
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if got := r.Header.Get("Authorization"); got != "Bearer k3y" {
			http.Error(w, "auth "+got, http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/echo":
			w.Header().Set("Content-Type", "application/json")
			w.Write(body)
		case "/chunked":
			for _, part := range []string{`{"valid":`, `true}`} {
				w.Write([]byte(part))
				w.(http.Flusher).Flush()
			}
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		case "/close":
			w.Header().Set("Connection", "close")
			w.Write([]byte("bye"))
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns++
		}
	}
	srv.Start()
	defer srv.Close()

	w, err := newWire(srv.URL, "k3y")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, tt := range []struct {
		path, body string
		status     int
		want       string
	}{
		{"/echo", `{"code":"123456"}`, 200, `{"code":"123456"}`},
		{"/echo", ``, 200, ``},
		{"/chunked", `{}`, 200, `{"valid":true}`},
		{"/empty", `{}`, 204, ``},
		{"/echo", strings.Repeat("x", 20000), 200, strings.Repeat("x", 20000)},
		{"/close", `{}`, 200, `bye`},
		{"/echo", `again`, 200, `again`},
	} {
		status, body, err := w.post(t.Context(), tt.path, []byte(tt.body))
		if err != nil || status != tt.status || string(body) != tt.want {
			t.Errorf("post(%s, %.20q) = %d, %.40q, %v; want %d, %.40q", tt.path, tt.body, status, body, err, tt.status, tt.want)
		}
	}
	// One connection until the server closed it, then one more.
	if conns != 2 {
		t.Errorf("%d connections, want 2", conns)
	}
}

// TestWireBadReply checks that a reply wire cannot read is an error and
// closes the connection.
func TestWireBadReply(t *testing.T) {
	for _, reply := range []string{
		"HTTP/1.1 OK\r\n\r\n",
		"SMTP ready\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
	} {
		url := rawServer(t, func(c net.Conn) {
			bufio.NewReader(c).ReadString('\n')
			c.Write([]byte(reply))
		})
		w, _ := newWire(url, "k")
		_, _, err := w.post(t.Context(), "/x", nil)
		if err == nil {
			t.Errorf("reply %q: no error", reply)
		}
		if w.conn != nil {
			t.Errorf("reply %q: connection kept", reply)
		}
	}
}

// TestWireInterrupt checks that interrupt ends a request the server never
// answers.
func TestWireInterrupt(t *testing.T) {
	url := rawServer(t, func(c net.Conn) { io.Copy(io.Discard, c) }) // never answers
	w, _ := newWire(url, "k")
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancel()
		w.interrupt()
	}()
	done := make(chan error)
	go func() {
		_, _, err := w.post(ctx, "/x", nil)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Error("interrupted post: no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("interrupt did not end the request")
	}
	if _, _, err := w.post(ctx, "/x", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("post after cancel = %v, want context.Canceled", err)
	}
}

// TestWirePrefixAndInterim checks that wire keeps the base URL's path and
// reads past interim replies.
func TestWirePrefixAndInterim(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(r.URL.Path))
	}))
	defer srv.Close()
	w, err := newWire(srv.URL+"/2fa/", "k")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if status, body, err := w.post(t.Context(), "/v1/users/u/verify", nil); err != nil || status != 200 || string(body) != "/2fa/v1/users/u/verify" {
		t.Errorf("post = %d, %q, %v; want the path under /2fa", status, body, err)
	}

	url := rawServer(t, func(c net.Conn) {
		bufio.NewReader(c).ReadString('\n')
		c.Write([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	})
	w2, _ := newWire(url, "k")
	defer w2.Close()
	if status, body, err := w2.post(t.Context(), "/x", nil); err != nil || status != 200 || string(body) != "ok" {
		t.Errorf("after interim replies: %d, %q, %v; want 200 ok", status, body, err)
	}
}

// rawServer serves one connection with serve, then closes it, and returns
// the server's base URL.
func rawServer(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		serve(c)
	}()
	return "http://" + ln.Addr().String()
}
