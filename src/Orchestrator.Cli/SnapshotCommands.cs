// Disk snapshots (issue 18): `vm snapshot VM NAME`, `vm restore VM SNAPSHOT`, `snapshot list [VM]`, `snapshot delete VM NAME`,
// and `vm create --from-snapshot VM/SNAPSHOT` (registered with vm create in CliSyntax).
using System.CommandLine;
using Orchestrator.Contracts;

namespace Orchestrator.Cli;

public static class SnapshotCommands
{
    public static Command Build(ICliActions actions, Func<(Action<Command> AddTo, Func<ParseResult, ClientArgs> Bind)> client)
    {
        var snapshot = new Command("snapshot", "Snapshots of your VMs' disks (take one with `vm snapshot`, restore with `vm restore`).");
        {
            var (addTo, bind) = client();
            var vm = new Argument<string?>("VM") { Description = "Only this VM's snapshots.", Arity = ArgumentArity.ZeroOrOne };
            var list = new Command("list", "List your snapshots.") { vm };
            addTo(list);
            list.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "GET",
                parse.GetValue(vm) is { } name ? $"{ApiClient.VmPath(name)}/snapshots" : "v1/snapshots", null, ApiRender.Snapshots), ct));
            snapshot.Subcommands.Add(list);
        }

        {
            var (addTo, bind) = client();
            var (vm, name) = (VmArgument(), NameArgument());
            var delete = new Command("delete", "Delete a snapshot (refused while a VM's disk or another snapshot is an overlay on it).") { vm, name };
            addTo(delete);
            delete.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "DELETE",
                SnapshotPath(parse.GetValue(vm)!, parse.GetValue(name)!), null, ApiRender.Done), ct));
            snapshot.Subcommands.Add(delete);
        }

        return snapshot;
    }

    /// <summary><c>vm snapshot VM NAME</c> and <c>vm restore VM SNAPSHOT</c>.</summary>
    public static IEnumerable<Command> VmCommands(ICliActions actions, Func<(Action<Command> AddTo, Func<ParseResult, ClientArgs> Bind)> client)
    {
        {
            var (addTo, bind) = client();
            var (vm, name) = (VmArgument(), NameArgument());
            var take = new Command("snapshot", "Snapshot a VM's disk, running (over QMP, its guest's filesystems frozen when it has an agent) or not.")
                { vm, name };
            addTo(take);
            take.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "POST", $"{ApiClient.VmPath(parse.GetValue(vm)!)}/snapshots",
                new CreateSnapshotRequest(parse.GetValue(name)), ApiRender.Snapshots), ct));
            yield return take;
        }

        {
            var (addTo, bind) = client();
            var (vm, name) = (VmArgument(), NameArgument());
            var restore = new Command("restore", "Bring a stopped VM's disk back to a snapshot (what it wrote since is gone).") { vm, name };
            addTo(restore);
            restore.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "POST",
                $"{SnapshotPath(parse.GetValue(vm)!, parse.GetValue(name)!)}/restore", null, ApiRender.Done), ct));
            yield return restore;
        }
    }

    /// <summary><c>vm create --from-snapshot VM/SNAPSHOT</c>.</summary>
    public static Option<string> FromSnapshotOption() => new("--from-snapshot")
    {
        Description = "Give the VM a copy-on-write clone of this snapshot's disk (boot the image it was taken with).", HelpName = "VM/SNAPSHOT",
    };

    private static Argument<string> VmArgument() => new("VM") { Description = "The VM." };

    private static Argument<string> NameArgument() => new("SNAPSHOT") { Description = "The snapshot's name." };

    private static string SnapshotPath(string vm, string name) => $"{ApiClient.VmPath(vm)}/snapshots/{Uri.EscapeDataString(name)}";
}
