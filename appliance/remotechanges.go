package appliance

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/portcullis-gw/portcullis/appliance/console"
)

// `portcullis remote policies|changes|revisions`: switches staged in the
// pending-changes tray, the tray reviewed and applied, revisions restored.

func (r *remote) policiesCommand() *cobra.Command {
	list := r.listing("list", "Policies in evaluation order: enabled, monitor-only, hits in the last 7 days, pending changes",
		[]string{"table", "jsonl"}, func(cmd *cobra.Command, c *remoteClient, output string) error {
			var ov console.PolicyOverview
			if err := c.call(cmd.Context(), epPolicies, nil, nil, nil, &ov); err != nil {
				return err
			}
			all := append(ov.Access, ov.Session...)
			if output == "jsonl" {
				return jsonLines(r.env.Stdout, all)
			}
			rows := make([][]string, 0, len(all))
			for _, p := range all {
				action := p.Action
				if p.Control != "" {
					action = p.Control + "/" + p.Action
				}
				monitor := "no"
				if p.MonitorOnly {
					monitor = "yes (was " + p.OriginalAction + ")"
				}
				rows = append(rows, []string{strconv.Itoa(p.Order), p.Kind, p.ID, action, yesNo(!p.Disabled), monitor,
					strconv.Itoa(p.Hits), timeCell(p.LastHit), p.File + ":" + strconv.Itoa(p.Line), strings.Join(p.Pending, "; ")})
			}
			if err := table(r.env.Stdout, []string{"ORDER", "KIND", "ID", "ACTION", "ENABLED", "MONITOR-ONLY", "HITS-7D", "LAST-HIT", "FILE", "PENDING"}, rows); err != nil {
				return err
			}
			printProblems(r, ov.Problems)
			if ov.Pending > 0 {
				fmt.Fprintf(r.env.Stdout, "%d change(s) pending: portcullis remote changes list\n", ov.Pending)
			}
			return nil
		})

	enable := r.stageCommand("enable POLICY-ID", "Stage enabling a policy in the pending-changes tray", exactArgs(1, "the policy's id"),
		func(args []string, _ bool) map[string]any {
			return map[string]any{"kind": console.ChangePolicyEnabled, "policy": args[0], "enabled": true}
		})
	disable := r.stageCommand("disable POLICY-ID", "Stage disabling a policy in the pending-changes tray", exactArgs(1, "the policy's id"),
		func(args []string, _ bool) map[string]any {
			return map[string]any{"kind": console.ChangePolicyEnabled, "policy": args[0], "enabled": false}
		})
	monitor := r.stageCommand("monitor-only POLICY-ID", "Stage the monitor-only switch of a policy (its action becomes monitor; --off gives it back)",
		exactArgs(1, "the policy's id"), func(args []string, off bool) map[string]any {
			return map[string]any{"kind": console.ChangeMonitorOnly, "policy": args[0], "on": !off}
		})
	monitor.Flags().Bool("off", false, "turn monitor-only off: the policy's own action comes back")
	c := group(r.env, "policies", "List policies and stage their switches", list, enable, disable, monitor)
	c.Aliases = []string{"policy"}
	return c
}

func printProblems(r *remote, problems []console.Problem) {
	for _, p := range problems {
		fmt.Fprintf(r.env.Stdout, "%s: %s\n", clean(p.Kind), clean(p.Text))
	}
}

// exactArgs is cobra.ExactArgs as a usage error naming what is missing.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			fmt.Fprintf(cmd.ErrOrStderr(), "give %s\nRun '%s --help' for usage.\n", what, cmd.CommandPath())
			return ErrUsage
		}
		return nil
	}
}

// stageCommand stages the change body makes of the arguments (and of
// --off, when the command has it), with --note.
func (r *remote) stageCommand(use, short string, args cobra.PositionalArgs, body func(args []string, off bool) map[string]any) *cobra.Command {
	var note string
	c := &cobra.Command{Use: use, Short: short, Args: args}
	c.RunE = r.withClient(func(cmd *cobra.Command, cl *remoteClient, args []string) error {
		off, _ := cmd.Flags().GetBool("off")
		in := body(args, off)
		if note != "" {
			in["note"] = note
		}
		return r.stage(cmd.Context(), cl, in)
	})
	c.Flags().StringVar(&note, "note", "", "note kept with the change (at most 200 characters)")
	return c
}

// stage sends a change to the tray and says what it does, as the tray
// describes it.
func (r *remote) stage(ctx context.Context, c *remoteClient, in map[string]any) error {
	var ch console.Change
	if err := c.call(ctx, epStage, nil, nil, in, &ch); err != nil {
		return err
	}
	summary := ""
	if tv, err := c.tray(ctx); err == nil {
		if v := stagedOf(tv, ch.ID); v != nil {
			summary = ": " + v.Summary
		}
	}
	fmt.Fprintf(r.env.Stdout, "staged change %d (%s)%s\napply the pending changes with: portcullis remote changes apply\n", ch.ID, clean(ch.File), clean(summary))
	return nil
}

func stagedOf(tv *console.TrayView, id int) *console.StagedChange {
	i := slices.IndexFunc(tv.Changes, func(v console.StagedChange) bool { return v.ID == id })
	if i < 0 {
		return nil
	}
	return &tv.Changes[i]
}

func (r *remote) changesCommand() *cobra.Command {
	list := r.listing("list", "The pending changes of every admin, with their summaries and whether they validate",
		[]string{"table", "jsonl"}, func(cmd *cobra.Command, c *remoteClient, output string) error {
			tv, err := c.tray(cmd.Context())
			if err != nil {
				return err
			}
			if output == "jsonl" {
				return jsonLines(r.env.Stdout, tv.Changes)
			}
			r.printTray(tv)
			return nil
		})

	show := &cobra.Command{
		Use:   "show CHANGE-ID",
		Short: "One pending change: what it does and its diff against the files as they are now",
		Args:  idArgs(1, "the change's id (changes list shows them)"),
		RunE: r.withClient(func(cmd *cobra.Command, c *remoteClient, args []string) error {
			id, _ := strconv.Atoi(args[0])
			tv, err := c.tray(cmd.Context())
			if err != nil {
				return err
			}
			v := stagedOf(tv, id)
			if v == nil {
				return fmt.Errorf("no pending change %d (portcullis remote changes list)", id)
			}
			w := r.env.Stdout
			fmt.Fprintf(w, "change %d: %s of %s, staged by %s at %s\n", v.ID, v.Kind, clean(v.File), clean(v.Author), timeCell(v.Time))
			if v.Note != "" {
				fmt.Fprintf(w, "note: %s\n", clean(v.Note))
			}
			if v.Error != "" {
				fmt.Fprintf(w, "error: %s\n", clean(v.Error))
			} else {
				fmt.Fprintf(w, "%s\n", clean(v.Summary))
			}
			if v.Risky {
				fmt.Fprintln(w, "risky: it could lock admins out, and is applied with a confirmation timeout")
			}
			if v.Conflict {
				fmt.Fprintln(w, "conflict: the file changed on disk since the change was staged")
			}
			if v.Diff != "" {
				fmt.Fprintln(w)
				printLines(w, v.Diff)
			}
			return nil
		}),
	}

	var note string
	var confirm bool
	apply := &cobra.Command{
		Use:   "apply",
		Short: "Apply every pending change together (validated as one set, kept as revisions, reloaded once)",
		Long: `Apply the pending changes as the tray lists them now (the tray's version is
sent, so a change staged meanwhile is not applied unseen). A change that could
lock admins out of the console is applied with a savepoint: the appliance
reverts it unless it is confirmed in time. With --confirm the command
confirms it at once over a new connection (which shows the console is still
reachable); on a terminal it asks; otherwise confirm it with
'portcullis remote changes confirm' (or revert it with 'changes revert').`,
		Args: noArgs,
		RunE: r.withClient(func(cmd *cobra.Command, c *remoteClient, _ []string) error {
			return r.apply(cmd.Context(), c, note, confirm)
		}),
	}
	apply.Flags().StringVar(&note, "note", "", "note kept with the revisions (at most 200 characters)")
	apply.Flags().BoolVar(&confirm, "confirm", false, "confirm a risky change right after applying it")

	var all bool
	discard := &cobra.Command{
		Use:   "discard CHANGE-ID... | --all",
		Short: "Discard pending changes",
		Args: func(cmd *cobra.Command, args []string) error {
			if all {
				return noArgs(cmd, args)
			}
			return idArgs(-1, "change ids or --all")(cmd, args)
		},
		RunE: r.withClient(func(cmd *cobra.Command, c *remoteClient, args []string) error {
			if all {
				tv, err := c.tray(cmd.Context())
				if err != nil {
					return err
				}
				for _, v := range tv.Changes {
					args = append(args, strconv.Itoa(v.ID))
				}
			}
			for _, id := range args {
				if err := c.call(cmd.Context(), epDiscard, []string{id}, nil, nil, nil); err != nil {
					return fmt.Errorf("change %s: %w", id, err)
				}
				fmt.Fprintf(r.env.Stdout, "discarded change %s\n", id)
			}
			return nil
		}),
	}
	discard.Flags().BoolVar(&all, "all", false, "every pending change")

	confirmCmd := &cobra.Command{
		Use:   "confirm",
		Short: "Keep the applied risky change that waits for confirmation",
		Args:  noArgs,
		RunE: r.withClient(func(cmd *cobra.Command, c *remoteClient, _ []string) error {
			return r.confirm(cmd.Context(), c)
		}),
	}
	revert := &cobra.Command{
		Use:   "revert",
		Short: "Revert the applied risky change that waits for confirmation, now",
		Args:  noArgs,
		RunE: r.withClient(func(cmd *cobra.Command, c *remoteClient, _ []string) error {
			return r.revert(cmd.Context(), c)
		}),
	}
	return group(r.env, "changes", "Review, apply and discard the pending changes", list, show, apply, discard, confirmCmd, revert)
}

func (r *remote) printTray(tv *console.TrayView) {
	w := r.env.Stdout
	if sp := tv.Savepoint; sp != nil {
		fmt.Fprintf(w, "waiting for confirmation: %s applied %q; reverted in %.0f s unless confirmed (changes confirm, or changes revert)\n",
			clean(sp.Author), clean(sp.Summary), sp.Remaining)
	}
	if len(tv.Changes) == 0 {
		fmt.Fprintln(w, "no pending changes")
		return
	}
	rows := make([][]string, 0, len(tv.Changes))
	for _, v := range tv.Changes {
		what := v.Summary
		switch {
		case v.Error != "":
			what = "ERROR: " + v.Error
		case v.Conflict:
			what = "CONFLICT (file changed since): " + v.Summary
		}
		rows = append(rows, []string{strconv.Itoa(v.ID), v.Kind, v.Author, v.File, yesNo(v.Risky), what})
	}
	_ = table(w, []string{"ID", "KIND", "AUTHOR", "FILE", "RISKY", "SUMMARY"}, rows)
	printProblems(r, tv.Problems)
	switch {
	case !tv.Valid:
		fmt.Fprintf(w, "tray version %d: does not apply as it is (problems or conflicts above): discard or fix the changes\n", tv.Version)
	case tv.Risky:
		fmt.Fprintf(w, "tray version %d: valid; risky: applying needs a confirmation within %d s\n", tv.Version, tv.ConfirmSeconds)
	default:
		fmt.Fprintf(w, "tray version %d: valid\n", tv.Version)
	}
}

func (r *remote) apply(ctx context.Context, c *remoteClient, note string, confirm bool) error {
	tv, err := c.tray(ctx)
	if err != nil {
		return err
	}
	if len(tv.Changes) == 0 {
		return errors.New("nothing to apply: there are no pending changes")
	}
	w := r.env.Stdout
	for _, v := range tv.Changes {
		fmt.Fprintf(w, "applying change %d: %s\n", v.ID, clean(v.Summary))
	}
	in := map[string]any{"version": tv.Version}
	if note != "" {
		in["note"] = note
	}
	var res console.ApplyResult
	if err := c.call(ctx, epApply, nil, nil, in, &res); err != nil {
		return err
	}
	for _, rev := range res.Revisions {
		fmt.Fprintf(w, "revision %d (%s): %s\n", rev.ID, clean(rev.File), clean(rev.Summary))
	}
	if res.Reloaded {
		fmt.Fprintln(w, "the appliance reloaded")
	}
	sp := res.Savepoint
	if sp == nil {
		return nil
	}
	fmt.Fprintf(w, "these changes could lock admins out of the console: they are reverted at %s (in %.0f s) unless confirmed\n",
		timeCell(sp.Deadline), sp.Remaining)
	if confirm {
		return r.confirm(ctx, c)
	}
	p := newPrompter(r.env)
	if !p.terminal() {
		fmt.Fprintln(w, "confirm with: portcullis remote changes confirm (or revert now with: portcullis remote changes revert)")
		return nil
	}
	answer := make(chan string, 1)
	go func() {
		s, _ := p.ask("Keep them? (confirmed over a new connection, which shows the console still answers) [y/N] ")
		answer <- strings.ToLower(strings.TrimSpace(s))
	}()
	select {
	case a := <-answer:
		if a == "y" || a == "yes" {
			return r.confirm(ctx, c)
		}
		return r.revert(ctx, c)
	case <-time.After(time.Until(sp.Deadline)):
		return errors.New("not confirmed in time: the appliance reverted the changes")
	case <-ctx.Done():
		return ctx.Err()
	}
}

// confirm keeps a risky change, over a new connection.
func (r *remote) confirm(ctx context.Context, c *remoteClient) error {
	c.fresh()
	if err := c.call(ctx, epConfirm, nil, nil, nil, nil); err != nil {
		return err
	}
	fmt.Fprintln(r.env.Stdout, "confirmed: the change is kept")
	return nil
}

func (r *remote) revert(ctx context.Context, c *remoteClient) error {
	if err := c.call(ctx, epRevert, nil, nil, nil, nil); err != nil {
		return err
	}
	fmt.Fprintln(r.env.Stdout, "reverted: the files are as before the change and the appliance reloaded them")
	return nil
}

func (r *remote) revisionsCommand() *cobra.Command {
	var file string
	var limit int
	var diff bool
	list := r.listing("list", "Saved revisions of the policy files, newest first", []string{"table", "jsonl"},
		func(cmd *cobra.Command, c *remoteClient, output string) error {
			q := url.Values{}
			if file != "" {
				q.Set("file", file)
			}
			var out struct {
				Revisions []console.Revision `json:"revisions"`
			}
			if err := c.call(cmd.Context(), epRevisions, nil, q, nil, &out); err != nil {
				return err
			}
			revs := out.Revisions
			if limit > 0 && len(revs) > limit {
				revs = revs[:limit]
			}
			w := r.env.Stdout
			switch {
			case output == "jsonl":
				return jsonLines(w, revs)
			case len(revs) == 0:
				fmt.Fprintln(w, "no revisions yet")
			case diff:
				for _, v := range revs {
					fmt.Fprintf(w, "revision %d · %s · %s by %s\n%s\n", v.ID, clean(v.File), timeCell(v.Time), clean(v.Author), clean(v.Summary))
					printLines(w, v.Diff)
					fmt.Fprintln(w)
				}
			default:
				rows := make([][]string, 0, len(revs))
				for _, v := range revs {
					rows = append(rows, []string{strconv.Itoa(v.ID), timeCell(v.Time), v.Author, v.File, v.Summary})
				}
				return table(w, []string{"ID", "TIME", "AUTHOR", "FILE", "SUMMARY"}, rows)
			}
			return nil
		})
	list.Flags().StringVar(&file, "file", "", "only this policy file's revisions")
	list.Flags().IntVar(&limit, "limit", 20, "at most this many (the console lists the newest 100)")
	list.Flags().BoolVar(&diff, "diff", false, "print each revision's diff")

	restore := func(verb, short, side string) *cobra.Command {
		return r.stageCommand(verb+" REVISION-ID", short, idArgs(1, "the revision's id (revisions list shows them)"),
			func(args []string, _ bool) map[string]any {
				id, _ := strconv.Atoi(args[0])
				return map[string]any{"kind": console.ChangeRestore, "revision": id, "side": side}
			})
	}
	rollback := restore("rollback", "Stage the revision's file as it was after that revision (roll back to this version)", "after")
	undo := restore("undo", "Stage the revision's file as it was before that revision (undo this change)", "before")
	return group(r.env, "revisions", "Policy file revisions: list, roll back, undo", list, rollback, undo)
}
