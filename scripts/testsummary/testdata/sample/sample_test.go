package sample

import "testing"

func TestPass(t *testing.T) { t.Log("chatter that is not shown") }

func TestSkip(t *testing.T) { t.Skip("needs the thing") }

func TestFail(t *testing.T) { t.Error("broken on purpose") }

func TestSub(t *testing.T) {
	t.Run("skipped", func(t *testing.T) { t.Skipf("sub reason %d", 7) })
}
