package idp

import (
	"encoding/json"
	"sort"
	"strings"
	"sync"

	"github.com/crewjam/saml/samlidp"
)

// memoryStore is the SAML IdP's key-value store: JSON documents in a map,
// lost on restart.
type memoryStore struct {
	mu   sync.RWMutex
	docs map[string][]byte
}

var _ samlidp.Store = (*memoryStore)(nil)

func newMemoryStore() *memoryStore { return &memoryStore{docs: map[string][]byte{}} }

func (s *memoryStore) Get(key string, value any) error {
	s.mu.RLock()
	doc, ok := s.docs[key]
	s.mu.RUnlock()
	if !ok {
		return samlidp.ErrNotFound
	}
	return json.Unmarshal(doc, value)
}

func (s *memoryStore) Put(key string, value any) error {
	doc, err := json.Marshal(value)
	if err != nil {
		return errorf("store %s: %v", key, err)
	}
	s.mu.Lock()
	s.docs[key] = doc
	s.mu.Unlock()
	return nil
}

func (s *memoryStore) Delete(key string) error {
	s.mu.Lock()
	delete(s.docs, key)
	s.mu.Unlock()
	return nil
}

func (s *memoryStore) List(prefix string) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var keys []string
	for k := range s.docs {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			keys = append(keys, rest)
		}
	}
	sort.Strings(keys)
	return keys, nil
}
