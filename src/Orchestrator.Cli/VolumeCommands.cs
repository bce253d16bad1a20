// `volume …`: a tenant's volumes (issue 18); `vm attach|detach VM VOLUME`, `vm create --volume` and `vm delete --with-volumes`
// are registered with the vm commands in CliSyntax.
using System.CommandLine;
using Orchestrator.Contracts;

namespace Orchestrator.Cli;

public static class VolumeCommands
{
    private const string Path = "v1/volumes";

    public static Command Build(ICliActions actions, Func<(Action<Command> AddTo, Func<ParseResult, ClientArgs> Bind)> client)
    {
        var volume = new Command("volume", "Your tenant's volumes: disks that outlive their VM, attached to one VM at a time.");
        {
            var (addTo, bind) = client();
            var name = NameArgument();
            var size = SizeOption("Its size in GiB.");
            var pool = new Option<string>("--pool") { Description = "The storage pool to put it in (default: a shared one, else the emptiest).", HelpName = "POOL" };
            var create = new Command("create", "Create a volume (blank: it reads as zeros).") { name, size, pool };
            addTo(create);
            create.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "POST", Path,
                new CreateVolumeRequest(parse.GetValue(name), parse.GetValue(size), parse.GetValue(pool)), ApiRender.Volumes), ct));
            volume.Subcommands.Add(create);
        }

        {
            var (addTo, bind) = client();
            var list = new Command("list", "List your volumes.");
            addTo(list);
            list.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "GET", Path, null, ApiRender.Volumes), ct));
            volume.Subcommands.Add(list);
        }

        volume.Subcommands.Add(Named(actions, client, "show", "Show one volume.", "GET", ApiRender.Volumes));
        volume.Subcommands.Add(Named(actions, client, "delete", "Delete a volume attached to no VM; its data is gone for good.", "DELETE", ApiRender.Done));
        {
            var (addTo, bind) = client();
            var name = NameArgument();
            var size = SizeOption("Its new size in GiB (a volume only grows).");
            var resize = new Command("resize", "Grow a volume (the guest sees the new size at its next attach or start).") { name, size };
            addTo(resize);
            resize.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), "POST", $"{VolumePath(parse.GetValue(name)!)}/resize",
                new ResizeVolumeRequest(parse.GetValue(size)), ApiRender.Volumes), ct));
            volume.Subcommands.Add(resize);
        }

        return volume;
    }

    /// <summary><c>vm attach VM VOLUME</c> and <c>vm detach VM VOLUME</c>: hot-plugged on a running VM.</summary>
    public static IEnumerable<Command> VmCommands(ICliActions actions, Func<(Action<Command> AddTo, Func<ParseResult, ClientArgs> Bind)> client)
    {
        foreach (var (verb, method, description) in new[]
                 {
                     ("attach", "POST", "Attach a volume to a VM, read-write (plugged in at once when it runs)."),
                     ("detach", "DELETE", "Detach a volume from a VM (a running guest is asked to let go of it first)."),
                 })
        {
            var (addTo, bind) = client();
            var vm = new Argument<string>("VM") { Description = "The VM." };
            var name = NameArgument();
            var command = new Command(verb, description) { vm, name };
            addTo(command);
            command.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), method,
                $"{ApiClient.VmPath(parse.GetValue(vm)!)}/volumes/{Uri.EscapeDataString(parse.GetValue(name)!)}", null, ApiRender.Volumes), ct));
            yield return command;
        }
    }

    /// <summary><c>vm create --volume NAME</c> (repeatable).</summary>
    public static Option<string[]> CreateOption() => new("--volume") { Description = "Attach this volume of yours (repeatable).", HelpName = "VOLUME" };

    /// <summary><c>vm delete --with-volumes</c>.</summary>
    public static Option<bool> WithVolumesOption() => new("--with-volumes") { Description = "Delete the volumes attached to it too (else they stay, detached)." };

    private static Command Named(ICliActions actions, Func<(Action<Command> AddTo, Func<ParseResult, ClientArgs> Bind)> client, string verb,
        string description, string method, ApiRender render)
    {
        var (addTo, bind) = client();
        var name = NameArgument();
        var command = new Command(verb, description) { name };
        addTo(command);
        command.SetAction((parse, ct) => actions.CallAsync(new ApiCallArgs(bind(parse), method, VolumePath(parse.GetValue(name)!), null, render), ct));
        return command;
    }

    private static Argument<string> NameArgument() => new("VOLUME") { Description = "The volume's name." };

    private static Option<int> SizeOption(string description) => new("--size-gib") { Description = description, Required = true, HelpName = "N" };

    private static string VolumePath(string name) => $"{Path}/{Uri.EscapeDataString(name)}";
}
