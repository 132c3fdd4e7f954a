package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newCompletionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Long: `Print the completion script of weir for bash, zsh or fish. Topic and
group names complete from the server (--server / WEIR_SERVER).`,
		Example: `  # bash, this shell only (needs the bash-completion package)
  source <(weir completion bash)

  # bash, for good
  weir completion bash > /etc/bash_completion.d/weir

  # zsh (compinit must be enabled)
  weir completion zsh > "${fpath[1]}/_weir"

  # fish
  weir completion fish > ~/.config/fish/completions/weir.fish`,
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError(fmt.Errorf("%s takes one argument, bash, zsh or fish (see '%s --help')", cmd.CommandPath(), cmd.CommandPath()))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), cmd.OutOrStdout()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, true)
			}
			return usageError(fmt.Errorf("unknown shell %q: want bash, zsh or fish", args[0]))
		},
	}
}
