package cli

import (
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchDebounce is how long the files must be quiet after a change before
// --watch reloads: an editor's save or a copy is several events, and a
// module written in place is complete only after its last write.
const watchDebounce = 250 * time.Millisecond

// watcher reports changes of a set of files. It watches their directories,
// not the files, so that a file replaced by a rename (the atomic way to
// update it) is still seen, and so is one that does not exist yet. Events
// are debounced: one name arrives on changes once the files were quiet for
// the debounce time.
type watcher struct {
	fs       *fsnotify.Watcher
	debounce time.Duration
	files    chan map[string]bool // a new set of files, from watch
	changes  chan string          // the last file that changed, after the quiet time
	done     chan struct{}
	dirs     map[string]bool // directories added to fs; only the loop touches it
}

// newWatcher watches files (see watcher).
func newWatcher(files []string, debounce time.Duration) (*watcher, error) {
	fs, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	w := &watcher{
		fs: fs, debounce: debounce,
		files:   make(chan map[string]bool, 1),
		changes: make(chan string),
		done:    make(chan struct{}),
		dirs:    map[string]bool{},
	}
	set, err := w.add(files)
	if err != nil {
		fs.Close()
		return nil, err
	}
	go w.loop(set)
	return w, nil
}

// add watches the directories of files and returns the set of their
// cleaned absolute names.
func (w *watcher) add(files []string) (map[string]bool, error) {
	set := map[string]bool{}
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, err
		}
		set[abs] = true
		dir := filepath.Dir(abs)
		if w.dirs[dir] {
			continue
		}
		if err := w.fs.Add(dir); err != nil {
			return nil, err
		}
		w.dirs[dir] = true
	}
	return set, nil
}

// watch replaces the set of watched files (the configuration named other
// modules). It does not block.
func (w *watcher) watch(files []string) {
	set := map[string]bool{}
	for _, f := range files {
		if abs, err := filepath.Abs(f); err == nil {
			set[abs] = true
		}
	}
	select {
	case <-w.files:
	default:
	}
	w.files <- set
}

func (w *watcher) loop(set map[string]bool) {
	var (
		timer   *time.Timer
		fire    <-chan time.Time
		changed string
	)
	for {
		select {
		case <-w.done:
			if timer != nil {
				timer.Stop()
			}
			return
		case files := <-w.files:
			var names []string
			for f := range files {
				names = append(names, f)
			}
			if s, err := w.add(names); err == nil {
				set = s
			}
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			if ev.Op == fsnotify.Chmod || !set[filepath.Clean(ev.Name)] {
				continue
			}
			changed = ev.Name
			if timer == nil {
				timer = time.NewTimer(w.debounce)
			} else {
				timer.Reset(w.debounce)
			}
			fire = timer.C
		case _, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			// An overflow or a watch error: reload to be safe.
			changed = "the watched files (watch error)"
			if timer == nil {
				timer = time.NewTimer(w.debounce)
			} else {
				timer.Reset(w.debounce)
			}
			fire = timer.C
		case <-fire:
			fire = nil
			select {
			case w.changes <- changed:
			case <-w.done:
				return
			}
		}
	}
}

// close stops watching.
func (w *watcher) close() {
	close(w.done)
	w.fs.Close()
}
