// Command ferretdb-embedded runs FerretDB v1.24 with its SQLite backend as a
// MongoDB-wire-protocol server. Postroom uses it for the test suite and as the
// embedded store of `npm start` when MONGODB_URI is unset, because no mongod
// binary can be installed on the build machines.
//
// Usage: ferretdb-embedded <listen-addr> <data-dir> [--exit-with-stdin]
// <listen-addr> is host:port, or unix:<path> for a Unix domain socket: the
// embedded store of `npm start` listens on a socket in its 0700 data
// directory, because FerretDB's SQLite backend has no authentication and a
// loopback port would let every local user read and write all mail.
// It prints the MongoDB URI on stdout once listening and stops on SIGINT/SIGTERM,
// and with --exit-with-stdin also when its standard input closes: the parent
// holds that pipe open, so a parent killed with SIGKILL (or out of memory)
// does not leave a store running that nothing uses.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	exitWithStdin := len(os.Args) == 4 && os.Args[3] == "--exit-with-stdin"
	if len(os.Args) != 3 && !exitWithStdin {
		fmt.Fprintln(os.Stderr, "usage: ferretdb-embedded <listen-addr> <data-dir> [--exit-with-stdin]")
		os.Exit(2)
	}
	addr, dataDir := os.Args[1], os.Args[2]
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		fail(err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		fail(err)
	}

	listener, network, dialAddr := ferretdb.ListenerConfig{TCP: addr}, "tcp", addr
	if socket, ok := strings.CutPrefix(addr, "unix:"); ok {
		// A socket left by a store that was killed would make the listen fail;
		// the caller only starts a store where none is running.
		_ = os.Remove(socket)
		listener, network, dialAddr = ferretdb.ListenerConfig{Unix: socket}, "unix", socket
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  listener,
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/",
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err != nil {
		fail(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if exitWithStdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin) // returns at EOF: the parent is gone
			stop()
		}()
	}

	// Announce readiness only once the port accepts connections, so callers
	// can wait for one line instead of polling.
	go func() {
		for ctx.Err() == nil {
			c, err := net.DialTimeout(network, dialAddr, 200*time.Millisecond)
			if err == nil {
				c.Close()
				fmt.Println(f.MongoDBURI())
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	f.Run(ctx)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "ferretdb-embedded:", err)
	os.Exit(1)
}
