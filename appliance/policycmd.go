package appliance

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/portcullis-gw/portcullis/policy"
	"github.com/portcullis-gw/portcullis/policy/filetype"
)

const policyUsage = `usage:
  portcullis policy check [--config FILE] DIR
      validate every *.yaml under DIR: unknown keys, bad values and regexes,
      unknown apps/activities/tags/detectors, conflicting or unreachable rules,
      and controls the appliance configured by FILE (default: the embedded
      default configuration) cannot enforce
  portcullis policy explain --request FILE [--policies DIR]
      evaluate the sample request in FILE (JSON) and explain the decision
`

// policyCommand is `portcullis policy ...`. The policy package does no I/O;
// reading directories and sample files happens here. Mistakes print
// policyUsage, as they always have.
func policyCommand(env Env) *cobra.Command {
	var cfgPath string
	check := &cobra.Command{
		Use:                   "check [--config FILE] DIR",
		DisableFlagsInUseLine: true,
		Short:                 "Validate policy files (file:line:col errors with fix hints)",
		Long: `Validate every *.yaml under DIR: unknown keys, bad values and regexes,
unknown apps/activities/tags/detectors, conflicting or unreachable rules, and
controls the appliance configured by FILE (default: the embedded default
configuration) cannot enforce.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				fmt.Fprint(env.Stderr, policyUsage)
				return ErrUsage
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			return policyCheck(cfgPath, args[0], env.Stdout, env.Stderr)
		},
	}
	check.Flags().StringVar(&cfgPath, "config", "", "appliance configuration whose capabilities the policies must fit")
	_ = check.MarkFlagFilename("config", "yaml", "yml")
	check.ValidArgsFunction = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return nil, cobra.ShellCompDirectiveFilterDirs
	}

	var reqPath, dir string
	explain := &cobra.Command{
		Use:                   "explain --request FILE [--policies DIR]",
		DisableFlagsInUseLine: true,
		Short:                 "Evaluate a sample request and explain every matching policy",
		Long:                  "Evaluate the sample request in FILE (JSON) and explain the decision.",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				fmt.Fprint(env.Stderr, policyUsage)
				return ErrUsage
			}
			return nil
		},
		RunE: func(*cobra.Command, []string) error {
			if reqPath == "" {
				fmt.Fprint(env.Stderr, policyUsage)
				return ErrUsage
			}
			return policyExplain(reqPath, dir, env.Stdout, env.Stderr)
		},
	}
	explain.Flags().StringVar(&reqPath, "request", "", "sample request (JSON)")
	explain.Flags().StringVar(&dir, "policies", "", "policy directory (default: the built-in catalog, no policies)")
	_ = explain.MarkFlagFilename("request", "json")
	_ = explain.MarkFlagDirname("policies")

	c := &cobra.Command{
		Use:   "policy",
		Short: "Check policy files and explain decisions",
		Args:  cobra.ArbitraryArgs,
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				fmt.Fprintf(env.Stderr, "unknown policy command %q\n%s", args[0], policyUsage)
				return ErrUsage
			}
			fmt.Fprint(env.Stderr, policyUsage)
			return ErrUsage
		},
	}
	c.AddCommand(check, explain)
	return c
}

func policyCheck(cfgPath, dir string, stdout, stderr io.Writer) error {
	cfg, err := LoadConfig(cfgPath)
	if err != nil {
		return err
	}
	set, files, err := loadPolicyDir(dir)
	if set != nil {
		// Parse errors do not hide reference and logic problems.
		err = errors.Join(err, policy.CheckFor(set, cfg.Session.capabilities()))
	}
	err, warnings := policy.SplitWarnings(err)
	for _, w := range warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	if err != nil {
		printPolicyErrors(stderr, err)
		return fmt.Errorf("policy check: %s has problems", dir)
	}
	fmt.Fprintf(stdout, "%d file(s) OK: %d access and %d session policies, %d apps added, %d detectors\n",
		files, len(set.AccessPolicies), len(set.SessionPolicies), len(set.Apps), len(set.Detectors))
	return nil
}

func policyExplain(reqPath, dir string, stdout, stderr io.Writer) error {
	set := &policy.PolicySet{}
	if dir != "" {
		var err error
		if set, _, err = loadPolicyDir(dir); err != nil || set == nil {
			printPolicyErrors(stderr, err)
			return fmt.Errorf("policy explain: %s has problems", dir)
		}
	}
	e, err := policy.Compile(set)
	if err != nil {
		printPolicyErrors(stderr, err)
		return fmt.Errorf("policy explain: policies do not compile")
	}
	return explainRequest(e, reqPath, stdout)
}

func printPolicyErrors(w io.Writer, err error) {
	n := 0
	var walk func(error)
	walk = func(err error) {
		var list policy.ErrorList
		switch {
		case err == nil:
		case errors.As(err, &list) && err.Error() == list.Error():
			for _, e := range list {
				fmt.Fprintln(w, e)
				n++
			}
		default:
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				for _, e := range j.Unwrap() {
					walk(e)
				}
				return
			}
			fmt.Fprintln(w, err)
			n++
		}
	}
	walk(err)
	fmt.Fprintf(w, "%d problem(s)\n", n)
}

// loadPolicyDir parses every *.yaml / *.yml under dir (recursively, in
// lexical order so merges are reproducible) and merges them.
func loadPolicyDir(dir string) (*policy.PolicySet, int, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if len(paths) == 0 {
		return nil, 0, fmt.Errorf("%s: no *.yaml files", dir)
	}
	sort.Strings(paths)
	var sets []*policy.PolicySet
	var all policy.ErrorList
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, 0, err
		}
		s, err := policy.ParseReader(p, f)
		f.Close()
		var list policy.ErrorList
		switch {
		case errors.As(err, &list):
			all = append(all, list...)
		case err != nil:
			return nil, 0, err
		}
		sets = append(sets, s)
	}
	set, err := policy.Merge(sets...)
	var list policy.ErrorList
	if errors.As(err, &list) {
		all = append(all, list...)
	}
	if len(all) > 0 {
		// The partial set lets check go on to references and logic.
		return set, len(paths), all
	}
	return set, len(paths), nil
}

// sampleRequest is the JSON of `policy explain --request`.
type sampleRequest struct {
	Type       string            `json:"type"` // access or session (default: session when method, kind or file is set)
	Host       string            `json:"host"`
	User       string            `json:"user"`
	Groups     []string          `json:"groups"`
	DeviceTags []string          `json:"device_tags"`
	ClientApp  string            `json:"client_app"` // browser (default) or mobile_desktop
	UATags     []string          `json:"user_agent_tags"`
	SourceIP   string            `json:"source_ip"`
	Method     string            `json:"method"`
	Path       string            `json:"path"`
	Kind       string            `json:"kind"` // download, upload, print, cut_copy, paste
	Activity   string            `json:"activity"`
	Body       map[string]string `json:"body"`
	File       *struct {
		Name  string `json:"name"`
		MIME  string `json:"mime"`
		Size  *int64 `json:"size"`
		Label string `json:"label"`
		// Path (relative to the request file) is read, its type detected
		// and its text extracted and inspected, like the proxy does.
		Path string `json:"path"`
	} `json:"file"`
	Content    *string `json:"content"`    // text to inspect
	Inspection string  `json:"inspection"` // failed, timeout or too_large
}

type bodyFields map[string]string

func (b bodyFields) Field(n string) (string, bool) { v, ok := b[n]; return v, ok }

func explainRequest(e *policy.Engine, path string, stdout io.Writer) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var sr sampleRequest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sr); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	subj := policy.Subject{User: sr.User, Groups: sr.Groups, DeviceTags: sr.DeviceTags, UATags: sr.UATags}
	switch sr.ClientApp {
	case "", "browser":
	case "mobile_desktop":
		subj.ClientApp = policy.ClientMobileDesktop
	default:
		return fmt.Errorf("%s: client_app %q: use browser or mobile_desktop", path, sr.ClientApp)
	}
	if sr.SourceIP != "" {
		if subj.SourceIP, err = netip.ParseAddr(sr.SourceIP); err != nil {
			return fmt.Errorf("%s: source_ip: %w", path, err)
		}
	}
	host := strings.ToLower(sr.Host)
	if sr.Type == "access" || sr.Type == "" && sr.Method == "" && sr.Kind == "" && sr.File == nil && sr.Activity == "" {
		req := &policy.AccessRequest{Host: host, Subject: subj}
		d := e.Access(req)
		e.ExplainAccess(stdout, req, &d)
		return nil
	}
	req := &policy.SessionRequest{Subject: subj, Method: strings.ToUpper(sr.Method), Host: host, Path: sr.Path, Activity: sr.Activity}
	if sr.Body != nil {
		req.Body = bodyFields(sr.Body)
	}
	kinds := map[string]policy.ActivityKind{"": policy.KindRequest, "request": policy.KindRequest, "download": policy.KindDownload,
		"upload": policy.KindUpload, "print": policy.KindPrint, "cut_copy": policy.KindCutCopy, "paste": policy.KindPaste}
	k, ok := kinds[sr.Kind]
	if !ok {
		return fmt.Errorf("%s: kind %q: use download, upload, print, cut_copy or paste", path, sr.Kind)
	}
	req.Kind = k
	in := e.NewInspector()
	inspected := false
	if sr.File != nil {
		fi := &policy.FileInfo{Name: sr.File.Name, MIME: sr.File.MIME, Label: sr.File.Label, Size: -1}
		if sr.File.Size != nil {
			fi.Size = *sr.File.Size
		}
		if sr.File.Path != "" {
			p := sr.File.Path
			if !filepath.IsAbs(p) {
				p = filepath.Join(filepath.Dir(path), p)
			}
			status, err := inspectFile(e, p, fi, in)
			if err != nil {
				return err
			}
			req.Inspection = status
			inspected = status == policy.InspectionDone
		}
		req.File = fi
	}
	if sr.Content != nil {
		in.Write([]byte(*sr.Content))
		inspected = true
		req.Inspection = policy.InspectionDone
	}
	switch sr.Inspection {
	case "":
	case "failed":
		req.Inspection, inspected = policy.InspectionFailed, false
	case "timeout":
		req.Inspection, inspected = policy.InspectionTimeout, false
	case "too_large":
		req.Inspection, inspected = policy.InspectionTooLarge, false
	default:
		return fmt.Errorf("%s: inspection %q: use failed, timeout or too_large", path, sr.Inspection)
	}
	if inspected {
		req.Content = in.Result()
	}
	d := e.Session(req)
	e.ExplainSession(stdout, req, &d)
	return nil
}

// inspectFile does what the proxy does with a file body: detect the type by
// content, extract text from documents, read the label, inspect.
func inspectFile(e *policy.Engine, path string, fi *policy.FileInfo, in *policy.Inspector) (policy.InspectionStatus, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if fi.Name == "" {
		fi.Name = filepath.Base(path)
	}
	fi.Size = st.Size()
	if st.Size() > e.MaxInspectionSize() {
		return policy.InspectionTooLarge, nil
	}
	head := make([]byte, filetype.SniffLen)
	n, _ := f.ReadAt(head, 0)
	t := filetype.Detect(head[:n])
	fi.MIME = t.MIME
	var info filetype.Info
	switch t {
	case filetype.DOCX, filetype.XLSX, filetype.PPTX:
		info, err = filetype.ExtractOOXML(f, st.Size(), in, filetype.Limits{})
	case filetype.PDF:
		info, err = filetype.ExtractPDF(f, st.Size(), in, filetype.Limits{})
	default:
		_, err = io.Copy(in, f)
	}
	if err != nil {
		if errors.Is(err, filetype.ErrTooLarge) {
			return policy.InspectionTooLarge, nil
		}
		return policy.InspectionFailed, nil
	}
	if l := info.LabelName(); l != "" && fi.Label == "" {
		fi.Label = l
	}
	return policy.InspectionDone, nil
}
