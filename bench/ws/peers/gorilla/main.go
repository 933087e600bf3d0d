// Peer server for bench/ws: Go net/http + gorilla/websocket.
//
//	gorilla-server --host H --port P
//
// /echo (and any other path) echoes every message; /broadcast sends every
// message to the other clients on /broadcast, encoded once
// (websocket.PreparedMessage) and written by each client's own writer
// goroutine, as in gorilla's chat example; GET /stats answers
// {"connections": N}.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"

	"github.com/gorilla/websocket"
)

var (
	upgrader = websocket.Upgrader{
		ReadBufferSize:  4096,
		WriteBufferSize: 4096,
		CheckOrigin:     func(*http.Request) bool { return true },
	}
	connections int64
	mu          sync.Mutex
	room        = map[*client]struct{}{}
)

type client struct {
	conn *websocket.Conn
	send chan *websocket.PreparedMessage
}

func (c *client) writer() {
	for m := range c.send {
		if err := c.conn.WritePreparedMessage(m); err != nil {
			break
		}
	}
	c.conn.Close()
}

func echo(conn *websocket.Conn) {
	for {
		mt, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		if err := conn.WriteMessage(mt, data); err != nil {
			return
		}
	}
}

func broadcast(conn *websocket.Conn) {
	c := &client{conn: conn, send: make(chan *websocket.PreparedMessage, 256)}
	mu.Lock()
	room[c] = struct{}{}
	mu.Unlock()
	go c.writer()
	defer func() {
		mu.Lock()
		if _, ok := room[c]; ok {
			delete(room, c)
			close(c.send)
		}
		mu.Unlock()
	}()
	for {
		mt, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		pm, err := websocket.NewPreparedMessage(mt, data)
		if err != nil {
			return
		}
		mu.Lock()
		for other := range room {
			if other == c {
				continue
			}
			select {
			case other.send <- pm:
			default: // a client 256 messages behind is dropped, as in gorilla's chat example
				delete(room, other)
				close(other.send)
			}
		}
		mu.Unlock()
	}
}

func main() {
	host := flag.String("host", "127.0.0.1", "address")
	port := flag.Int("port", 0, "port")
	flag.Parse()
	http.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		if websocket.IsWebSocketUpgrade(r) {
			serveWS(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"connections\":%d}", atomic.LoadInt64(&connections))
	})
	http.HandleFunc("/", serveWS)
	ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", *host, *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening on %d\n", ln.Addr().(*net.TCPAddr).Port)
	os.Stdout.Sync()
	fmt.Fprintln(os.Stderr, http.Serve(ln, nil))
	os.Exit(1)
}

func serveWS(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	atomic.AddInt64(&connections, 1)
	defer atomic.AddInt64(&connections, -1)
	if r.URL.Path == "/broadcast" {
		broadcast(conn)
	} else {
		echo(conn)
		conn.Close()
	}
}
