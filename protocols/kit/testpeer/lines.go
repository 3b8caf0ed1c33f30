package testpeer

import (
	"bufio"
	"os"
	"os/exec"
	"testing"
)

// Lines starts cmd (a client that prints what it receives, such as
// mosquitto_sub or coap-client -s) and hands its stdout lines to the
// returned channel, closed when the program ends; its stderr goes to the
// test's. The program is killed when the test ends.
func Lines(t testing.TB, cmd *exec.Cmd) <-chan string {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testpeer: start %s: %v", cmd.Path, err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string, 64)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	return lines
}
