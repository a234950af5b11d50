package dlp

import "testing"

// FuzzInspector: any input, split anywhere, gives the same counts as one
// write, and never panics.
func FuzzInspector(f *testing.F) {
	f.Add([]byte("4111 1111 1111 1111 DE89370400440532013000 a@b.co 123-45-6789 SWIFT DEUTDEFF"), uint16(7))
	s, _ := NewSet([]Custom{{ID: "k", Keywords: []string{"secret"}}, {ID: "r", Regex: `ID-[0-9]+`}})
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		one := s.NewInspector()
		one.Write(data)
		want := one.Result()
		many := s.NewInspector()
		step := int(split)%97 + 1
		for off := 0; off < len(data); off += step {
			many.Write(data[off:min(off+step, len(data))])
		}
		got := many.Result()
		for i := 0; i < s.Len(); i++ {
			if got.Count(i) != want.Count(i) {
				t.Fatalf("%s: %d split, %d whole", s.ID(i), got.Count(i), want.Count(i))
			}
		}
	})
}
