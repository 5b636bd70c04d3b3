package cli

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/agentkernel/agentkernel/internal/paths"
	"github.com/agentkernel/agentkernel/internal/receipt"
	"github.com/agentkernel/agentkernel/pkg/api"
	"github.com/agentkernel/agentkernel/pkg/client"
)

// maxReceiptStdin bounds the stdin a run with a receipt sends (it is
// collected, not streamed).
const maxReceiptStdin = 16 << 20

// execWithReceipt runs req collected (not streamed), prints its output,
// writes the daemon's signed receipt to file and exits with the command's
// code.
func execWithReceipt(cmd *cobra.Command, c *client.Client, name string, req api.ExecRequest, file string) error {
	if req.TTY {
		return withCode(exitCLI, fmt.Errorf("--receipt does not go with -t: the output is collected to be hashed"))
	}
	if forwardStdin(cmd, false) {
		b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), maxReceiptStdin+1))
		if err != nil {
			return withCode(exitCLI, err)
		}
		if len(b) > maxReceiptStdin {
			return withCode(exitCLI, fmt.Errorf("--receipt: stdin over %d bytes", maxReceiptStdin))
		}
		req.Stdin = string(b)
	}
	req.Receipt = true
	res, err := c.Exec(cmd.Context(), name, req)
	if err != nil {
		return withCode(exitCLI, err)
	}
	io.WriteString(cmd.OutOrStdout(), res.Stdout)
	io.WriteString(cmd.ErrOrStderr(), res.Stderr)
	if res.Receipt == nil {
		return withCode(exitCLI, fmt.Errorf("the daemon sent no receipt"))
	}
	b, err := json.MarshalIndent(res.Receipt, "", "  ")
	if err != nil {
		return withCode(exitCLI, err)
	}
	if err := os.WriteFile(file, append(b, '\n'), 0o644); err != nil {
		return withCode(exitCLI, fmt.Errorf("writing the receipt: %w", err))
	}
	if res.ExitCode != 0 {
		return &ExitError{Code: res.ExitCode}
	}
	return nil
}

func newReceiptCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "receipt",
		Short: "Check and show signed receipts of commands (exec/run --receipt)",
		Long: `A receipt is the daemon's signed record of one command it ran: the sandbox,
backend, profile, image and its ID, the egress policy in force, the command,
its exit code and SHA-256 hashes of its stdout and stderr. The daemon signs
with an Ed25519 key under its home; verify checks a receipt against the key
you trust (that home's public key, or --key), never one the receipt names.`,
	}
	var keyFile string
	verify := &cobra.Command{
		Use:   "verify FILE",
		Short: "Check a receipt's signature with the trusted key; with --stdout/--stderr, the output too",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := readReceipt(args[0])
			if err != nil {
				return err
			}
			pub, err := trustedKey(keyFile)
			if err != nil {
				return err
			}
			r, err := receipt.Verify(s, pub)
			if err != nil {
				return err
			}
			for flag, want := range map[string]string{"stdout": r.StdoutSHA256, "stderr": r.StderrSHA256} {
				path, _ := cmd.Flags().GetString(flag)
				if path == "" {
					continue
				}
				b, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				if receipt.Hash(b) != want {
					return fmt.Errorf("--%s %s is not the output the receipt records", flag, path)
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "verified: %s ran %s in %s (exit %d), signed by %s\n",
				oneLine(r.Sandbox), oneLine(strings.Join(r.Command, " ")), oneLine(r.Image), r.ExitCode, receipt.KeyID(pub)[:16])
			return nil
		},
	}
	verify.Flags().StringVar(&keyFile, "key", "", "the trusted public key `FILE` (default: $AGENTKERNEL_HOME/receipts/key.pub)")
	verify.Flags().String("stdout", "", "also check that `FILE` is the stdout the receipt records")
	verify.Flags().String("stderr", "", "also check that `FILE` is the stderr the receipt records")
	show := &cobra.Command{
		Use:   "show FILE",
		Short: "Print what a receipt says (without checking it; see verify)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := readReceipt(args[0])
			if err != nil {
				return err
			}
			r, err := receipt.Decode(s)
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), r)
		},
	}
	key := &cobra.Command{
		Use:   "key",
		Short: "Print this home's public receipt key, to give to verifiers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pub, err := trustedKey("")
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), receipt.EncodePublicKey(pub))
			return nil
		},
	}
	cmd.AddCommand(verify, show, key)
	return cmd
}

func readReceipt(path string) (api.SignedReceipt, error) {
	var s api.SignedReceipt
	b, err := os.ReadFile(path)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil || len(s.Payload) == 0 || len(s.Signature) == 0 {
		return s, fmt.Errorf("%s is not a receipt (%v)", path, err)
	}
	return s, nil
}

// trustedKey reads the public key in file, or the home's.
func trustedKey(file string) (ed25519.PublicKey, error) {
	if file == "" {
		l, err := paths.Default()
		if err != nil {
			return nil, err
		}
		file = filepath.Join(l.Home, "receipts", receipt.PublicFile)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("the trusted receipt key: %w (the daemon makes it on first start; or pass --key)", err)
	}
	return receipt.ParsePublicKey(string(b))
}
