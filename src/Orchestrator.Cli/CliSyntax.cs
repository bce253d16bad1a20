// The command tree: names, options, arguments and local validation. Behaviour lives behind ICliActions.
using System.CommandLine;
using System.CommandLine.Parsing;
using Orchestrator.Contracts;

namespace Orchestrator.Cli;

public static partial class CliSyntax
{
    public static readonly TimeSpan DefaultWaitTimeout = TimeSpan.FromSeconds(120);

    /// <summary>The longest <c>--timeout</c> a wait takes.</summary>
    public const int MaxWaitSeconds = 7 * 24 * 3600;

    public static RootCommand Build(ICliActions actions)
    {
        ArgumentNullException.ThrowIfNull(actions);

        var root = new RootCommand("Orchestrator: VMs on a cluster of Linux hosts. These commands talk to a node over HTTP.");
        root.Subcommands.Add(VmCommand(actions));

        var host = new Command("host", "Hosts of the cluster.");
        host.Subcommands.Add(ListCommand(actions, ListKind.Hosts, "List the hosts with their capacity, allocations and accelerator."));
        {
            var client = new ClientOptions();
            var id = new Argument<string>("id") { Description = "The host's id (see `host list`)." };
            var show = new Command("show", "Show one host: capacity, allocations, and the accelerator its probe chose and why.") { id };
            client.AddTo(show);
            show.SetAction((parse, ct) => actions.HostShowAsync(new HostShowArgs(client.Bind(parse), parse.GetValue(id)!), ct));
            host.Subcommands.Add(show);
        }

        PlacementCliCommands.AddHostLabels(host, actions, () =>
        {
            var client = new ClientOptions();
            return (client.AddTo, client.Bind);
        });
        root.Subcommands.Add(host);
        root.Subcommands.Add(PlacementCliCommands.Group(actions, () =>
        {
            var client = new ClientOptions();
            return (client.AddTo, client.Bind);
        }));

        root.Subcommands.Add(TenantCommands.Build(actions, () =>
        {
            var client = new ClientOptions();
            return (client.AddTo, client.Bind);
        }));

        root.Subcommands.Add(NetworkCommands.Build(actions, () =>
        {
            var client = new ClientOptions();
            return (client.AddTo, client.Bind);
        }));

        root.Subcommands.Add(SecurityGroupCliCommands.Build(actions, () =>
        {
            var client = new ClientOptions();
            return (client.AddTo, client.Bind);
        }));

        root.Subcommands.Add(VolumeCommands.Build(actions, () =>
        {
            var client = new ClientOptions();
            return (client.AddTo, client.Bind);
        }));

        root.Subcommands.Add(SnapshotCommands.Build(actions, () =>
        {
            var client = new ClientOptions();
            return (client.AddTo, client.Bind);
        }));

        foreach (var command in AutomationCommands.Build(actions, () =>
        {
            var client = new ClientOptions();
            return (client.AddTo, client.Bind);
        }))
        {
            root.Subcommands.Add(command);
        }

        var image = ImageCommands.Build(actions, () =>
        {
            var client = new ClientOptions();
            return (client.AddTo, client.Bind);
        });
        image.Subcommands.Insert(0, ListCommand(actions, ListKind.Images, "List the images a VM can be created from: the catalog's and your imported ones."));
        root.Subcommands.Add(image);
        root.Subcommands.Add(ApplyCommand.Build(actions));
        root.Subcommands.Add(EventsCommand(actions));

        return root;
    }

    private static Command VmCommand(ICliActions actions)
    {
        var vm = new Command("vm", "Virtual machines.");

        {
            var client = new ClientOptions();
            var name = NameArgument();
            // Defaults as the demo VMs have (and as Firecracker's one vCPU): enough for the catalog's images.
            var vcpus = new Option<int>("--vcpus") { Description = "Number of virtual CPUs.", HelpName = "N", DefaultValueFactory = _ => 1 };
            var memory = new Option<int>("--memory") { Description = "Memory in MiB.", HelpName = "MIB", DefaultValueFactory = _ => 256 };
            var image = new Option<string>("--image") { Description = "Catalog image to boot (see `image list`).", HelpName = "IMAGE", Required = true };
            var restart = new Option<string>("--restart")
            {
                Description = "What to do when the VM stops by itself (the server's default when omitted).",
            }.AcceptOnlyFromAmong("always", "on-failure", "never");
            var driver = new Option<string>("--driver")
            {
                Description = "Run it only on hosts with this hypervisor driver: kvm (the native engine) or qemu (any host's when omitted).",
            }.AcceptOnlyFromAmong("kvm", "qemu");
            var accelerator = new Option<string>("--accel")
            {
                Description = "Run it only on hosts whose probe proved hardware acceleration (kvm); it waits Pending where every host fell back to TCG.",
            }.AcceptOnlyFromAmong("kvm");
            var (wait, timeout) = WaitOptions("Wait until the VM is Ready.");

            var create = new Command("create", "Create a VM and start it.") { name, vcpus, memory, image, restart, driver, accelerator, wait, timeout };
            client.AddTo(create);
            var resources = new ResourceOptions(allowNone: false);
            resources.AddTo(create);
            var labels = new Option<string[]>("--label") { Description = "KEY=VALUE label (repeatable).", HelpName = "KEY=VALUE" };
            create.Options.Add(labels);
            var hostname = new Option<string>("--hostname") { Description = "The guest's hostname (default: the VM's name).", HelpName = "NAME" };
            var sshKeys = new Option<string[]>("--ssh-key")
            {
                Description = "A file of OpenSSH public keys, one per line, for the guest's default user (repeatable).", HelpName = "FILE",
            };
            var userData = new Option<string>("--user-data")
            {
                Description = "A cloud-init user-data file (at most 64 KiB), passed to the guest byte for byte.", HelpName = "FILE",
            };
            create.Options.Add(hostname);
            create.Options.Add(sshKeys);
            create.Options.Add(userData);
            var diskGiB = new Option<int?>("--disk-gib")
            {
                Description = "Size of the VM's persistent disk in GiB, kept across stops and restarts until the VM is deleted (default 1).",
                HelpName = "N",
            };
            create.Options.Add(diskGiB);
            var (hostSelector, group) = PlacementCliCommands.VmOptions(create);
            var networks = new Option<string[]>("--network") { Description = "A NIC on this network of yours (repeatable).", HelpName = "NET" };
            var ips = new Option<string[]>("--ip") { Description = "The address the NIC of the --network before it asks for (default: the lowest free).", HelpName = "A.B.C.D" };
            create.Options.Add(networks);
            create.Options.Add(ips);
            var secgroups = new Option<string[]>("--secgroup") { Description = "A security group of yours on every --network NIC (repeatable).", HelpName = "GROUP" };
            create.Options.Add(secgroups);
            var volumes = VolumeCommands.CreateOption();
            create.Options.Add(volumes);
            var fromSnapshot = SnapshotCommands.FromSnapshotOption();
            create.Options.Add(fromSnapshot);
            create.SetAction((parse, ct) => actions.VmCreateAsync(
                new VmCreateArgs(
                    client.Bind(parse),
                    parse.GetValue(name)!,
                    parse.GetValue(vcpus),
                    parse.GetValue(memory),
                    parse.GetValue(image)!,
                    parse.GetValue(restart),
                    parse.GetValue(wait),
                    TimeSpan.FromSeconds(parse.GetValue(timeout)),
                    resources.Bind(parse) is { IsEmpty: false } given ? given : null,
                    Labels(parse.GetValue(labels)),
                    parse.GetValue(driver),
                    parse.GetValue(accelerator),
                    parse.GetValue(hostname) is null && parse.GetValue(sshKeys) is null or [] && parse.GetValue(userData) is null
                        ? null
                        : new VmBootstrapArgs(parse.GetValue(hostname), parse.GetValue(sshKeys) ?? [], parse.GetValue(userData)),
                    parse.GetValue(diskGiB),
                    parse.GetValue(hostSelector) is { Length: > 0 } terms ? terms : null,
                    parse.GetValue(group),
                    NetworkCommands.Nics(parse.GetValue(networks), parse.GetValue(ips), parse.GetValue(secgroups)),
                    parse.GetValue(volumes) is { Length: > 0 } attached ? attached : null,
                    parse.GetValue(fromSnapshot)),
                ct));
            vm.Subcommands.Add(create);
        }

        {
            var client = new ClientOptions();
            var name = NameArgument();
            var set = new Command("set", "Change a VM's CPU shares, reservation, limit, memory reservation/limit or cpuset, running or not. " +
                                         "Give \"none\" to go back to the default.") { name };
            client.AddTo(set);
            var resources = new ResourceOptions(allowNone: true);
            resources.AddTo(set);
            set.SetAction((parse, ct) => actions.VmSetAsync(new VmSetArgs(client.Bind(parse), parse.GetValue(name)!, resources.Bind(parse)), ct));
            vm.Subcommands.Add(set);
        }

        vm.Subcommands.Add(ListCommand(actions, ListKind.Vms, "List VMs."));

        {
            var client = new ClientOptions();
            var name = NameArgument();
            var show = new Command("show", "Show one VM: state, placement, vCPU threads.") { name };
            client.AddTo(show);
            show.SetAction((parse, ct) => actions.VmShowAsync(new VmShowArgs(client.Bind(parse), parse.GetValue(name)!), ct));
            vm.Subcommands.Add(show);
        }

        {
            var client = new ClientOptions();
            var name = NameArgument();
            var force = new Option<bool>("--force") { Description = "Take the keyboard from the session that holds it (it is told, and goes on reading)." };
            var console = new Command("console", "Attach this terminal to the VM's serial console (Ctrl-] detaches).") { name, force };
            client.AddTo(console);
            console.SetAction((parse, ct) => actions.VmConsoleAsync(new VmConsoleArgs(client.Bind(parse), parse.GetValue(name)!, parse.GetValue(force)), ct));
            vm.Subcommands.Add(console);
        }

        vm.Subcommands.Add(AutomationCommands.VmLabel(actions, () =>
        {
            var client = new ClientOptions();
            return (client.AddTo, client.Bind);
        }));
        vm.Subcommands.Add(ChangeCommand(actions, VmChange.Stop, "stop", "Stop a VM (it stays defined).", "Wait until the VM is Stopped."));
        vm.Subcommands.Add(ChangeCommand(actions, VmChange.Start, "start", "Start a stopped VM.", "Wait until the VM is Ready."));
        vm.Subcommands.Add(ChangeCommand(actions, VmChange.Delete, "delete", "Stop a VM and delete it.", "Wait until the VM is gone.",
            VolumeCommands.WithVolumesOption()));
        foreach (var command in VolumeCommands.VmCommands(actions, () =>
        {
            var client = new ClientOptions();
            return (client.AddTo, client.Bind);
        }))
        {
            vm.Subcommands.Add(command);
        }

        foreach (var command in SnapshotCommands.VmCommands(actions, () =>
        {
            var client = new ClientOptions();
            return (client.AddTo, client.Bind);
        }))
        {
            vm.Subcommands.Add(command);
        }

        vm.Subcommands.Add(PauseCommand(actions, VmChange.Pause, "pause",
            "Pause a running VM: its vCPUs stop, its memory stays. Answers once every vCPU stopped. Not kept across a restart."));
        vm.Subcommands.Add(PauseCommand(actions, VmChange.Resume, "resume", "Resume a paused VM."));
        return vm;
    }

    private static Command PauseCommand(ICliActions actions, VmChange change, string verb, string description)
    {
        var client = new ClientOptions();
        var name = NameArgument();
        var command = new Command(verb, description) { name };
        client.AddTo(command);
        command.SetAction((parse, ct) => actions.VmChangeAsync(
            new VmChangeArgs(client.Bind(parse), change, parse.GetValue(name)!, Wait: false, TimeSpan.Zero), ct));
        return command;
    }

    private static Command ChangeCommand(ICliActions actions, VmChange change, string verb, string description, string waitDescription,
        Option<bool>? withVolumes = null)
    {
        var client = new ClientOptions();
        var name = NameArgument();
        var (wait, timeout) = WaitOptions(waitDescription);
        var command = new Command(verb, description) { name, wait, timeout };
        if (withVolumes is not null)
        {
            command.Options.Add(withVolumes);
        }

        client.AddTo(command);
        command.SetAction((parse, ct) => actions.VmChangeAsync(
            new VmChangeArgs(client.Bind(parse), change, parse.GetValue(name)!, parse.GetValue(wait), TimeSpan.FromSeconds(parse.GetValue(timeout)),
                withVolumes is not null && parse.GetValue(withVolumes)),
            ct));
        return command;
    }

    private static Command ListCommand(ICliActions actions, ListKind kind, string description)
    {
        var client = new ClientOptions();
        var command = new Command("list", description);
        client.AddTo(command);
        command.SetAction((parse, ct) => actions.ListAsync(new ListArgs(client.Bind(parse), kind), ct));
        return command;
    }

    private static Dictionary<string, string>? Labels(string[]? items) =>
        items is { Length: > 0 } ? AutomationCommands.Pairs(items, "--label") : null;

    /// <summary>--shares, --reservation, --limit, --memory-reservation, --memory-limit, --cpuset, --disk-iops/-bps/-shares, --net-bps/-shares (vm create and vm set).</summary>
    private sealed class ResourceOptions
    {
        private readonly bool _allowNone;
        private readonly Option<string> _shares = new("--shares") { Description = "CPU shares: weight under contention (default 1024 per vCPU).", HelpName = "N" };
        private readonly Option<string> _reservation = new("--reservation") { Description = "Guaranteed CPU: millicores (500m) or CPUs (0.5).", HelpName = "CPU" };
        private readonly Option<string> _limit = new("--limit") { Description = "Hard CPU cap: millicores (250m) or CPUs (1.5).", HelpName = "CPU" };
        private readonly Option<string> _memoryReservation = new("--memory-reservation") { Description = "Guaranteed memory in MiB.", HelpName = "MIB" };
        private readonly Option<string> _memoryLimit = new("--memory-limit") { Description = "Cap on the whole VM process in MiB (at least its memory).", HelpName = "MIB" };
        private readonly Option<string> _cpuset = new("--cpuset") { Description = "Host CPUs its vCPUs are pinned to, e.g. 2-3.", HelpName = "CPUS" };
        private readonly Option<string> _diskIops = new("--disk-iops") { Description = "Cap on its disks' I/O operations per second (disk and volumes together).", HelpName = "N" };
        private readonly Option<string> _diskBps = new("--disk-bps") { Description = "Cap on its disks' bytes per second (disk and volumes together).", HelpName = "N" };
        private readonly Option<string> _diskShares = new("--disk-shares") { Description = "Disk weight when the host's disk is contended (default 100).", HelpName = "N" };
        private readonly Option<string> _netBps = new("--net-bps") { Description = "Cap on its NICs' bytes per second, each way (NICs together, Ethernet frames).", HelpName = "N" };
        private readonly Option<string> _netShares = new("--net-shares") { Description = "Network weight when the host's network is contended (default 100).", HelpName = "N" };

        public ResourceOptions(bool allowNone)
        {
            _allowNone = allowNone;
        }

        public void AddTo(Command command)
        {
            foreach (var option in new[] { _shares, _reservation, _limit, _memoryReservation, _memoryLimit, _cpuset, _diskIops, _diskBps, _diskShares, _netBps, _netShares })
            {
                command.Options.Add(option);
            }
        }

        public VmResourceArgs Bind(ParseResult parse)
        {
            var cleared = new HashSet<string>(StringComparer.Ordinal);
            bool IsNone(Option<string> option, string field)
            {
                if (parse.GetValue(option) != "none")
                {
                    return false;
                }

                if (!_allowNone)
                {
                    throw new CliException($"{option.Name}: \"none\" only makes sense with vm set; leave the option out instead");
                }

                cleared.Add(field);
                return true;
            }

            int? Whole(Option<string> option, string field) =>
                WholeLong(option, field) is { } n
                    ? n is >= int.MinValue and <= int.MaxValue ? (int)n : throw new CliException($"{option.Name}: {n} is out of range")
                    : null;

            long? WholeLong(Option<string> option, string field)
            {
                if (parse.GetValue(option) is not { } text || IsNone(option, field))
                {
                    return null;
                }

                return long.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n)
                    ? n
                    : throw new CliException($"{option.Name}: '{text}' is not a whole number");
            }

            int? Millicores(Option<string> option, string field)
            {
                if (parse.GetValue(option) is not { } text || IsNone(option, field))
                {
                    return null;
                }

                return CpuAmounts.TryParseMillicores(text, out var millicores)
                    ? millicores
                    : throw new CliException($"{option.Name}: '{text}' is neither millicores (500m) nor CPUs (0.5)");
            }

            var cpuset = parse.GetValue(_cpuset) is { } set && !IsNone(_cpuset, "cpuset") ? set : null;
            return new VmResourceArgs(
                Whole(_shares, "cpuShares"),
                Millicores(_reservation, "cpuReservationMillicores"),
                Millicores(_limit, "cpuLimitMillicores"),
                Whole(_memoryReservation, "memoryReservationMiB"),
                Whole(_memoryLimit, "memoryLimitMiB"),
                cpuset,
                cleared,
                WholeLong(_diskIops, "diskIops"),
                WholeLong(_diskBps, "diskBps"),
                Whole(_diskShares, "diskShares"),
                WholeLong(_netBps, "netBps"),
                Whole(_netShares, "netShares"));
        }
    }

    private static Argument<string> NameArgument() => new("NAME") { Description = "The VM's name." };

    private static (Option<bool> Wait, Option<int> Timeout) WaitOptions(string waitDescription)
    {
        var wait = new Option<bool>("--wait") { Description = waitDescription };
        var timeout = new Option<int>("--timeout")
        {
            Description = "With --wait: give up after this many seconds.",
            HelpName = "SECONDS",
            DefaultValueFactory = _ => (int)DefaultWaitTimeout.TotalSeconds,
        };
        timeout.Validators.Add(result =>
        {
            // A wait arms a timer, and timers take at most about 49 days: past that the wait would throw, not wait.
            if (result.GetValueOrDefault<int>() is <= 0 or > MaxWaitSeconds)
            {
                result.AddError($"--timeout must be between 1 and {MaxWaitSeconds} seconds (a week)");
            }
        });
        return (wait, timeout);
    }

    private static Option<string> DataOption(string description) =>
        new("--data") { Description = description, HelpName = "DIR" };

    /// <summary>--url, --api-key, --data, --output: fresh instances per command, bound by <see cref="Bind"/>.</summary>
    internal sealed class ClientOptions
    {
        private readonly Option<string> _url = new("--url")
        {
            Description = "The node's HTTP API (default: $ORCHESTRATOR_URL, else DATA/node.json).",
            HelpName = "URL",
        };

        private readonly Option<string> _apiKey = new("--api-key")
        {
            Description = "API key (default: $ORCHESTRATOR_API_KEY, else DATA/admin.key for the node named in DATA/node.json).",
            HelpName = "KEY",
        };

        private readonly Option<string> _data = DataOption("Where to find a local node (default: $ORCHESTRATOR_DATA, $XDG_DATA_HOME/orchestrator, ~/.local/share/orchestrator).");

        private readonly Option<string> _output = new Option<string>("--output", "-o")
        {
            Description = "table for people, json (the server's JSON, indented) for scripts.",
            DefaultValueFactory = _ => "table",
        }.AcceptOnlyFromAmong("table", "json");

        public ClientOptions()
        {
            _url.Validators.Add(result =>
            {
                var value = result.GetValueOrDefault<string>();
                if (NodeConnectionResolver.ParseUrl(value) is null)
                {
                    result.AddError($"--url '{value}' is not an http:// or https:// URL");
                }
            });
        }

        public void AddTo(Command command)
        {
            command.Options.Add(_url);
            command.Options.Add(_apiKey);
            command.Options.Add(_data);
            command.Options.Add(_output);
        }

        public ClientArgs Bind(ParseResult parse) => new(
            parse.GetValue(_url),
            parse.GetValue(_apiKey),
            parse.GetValue(_data),
            parse.GetValue(_output) == "json" ? OutputFormat.Json : OutputFormat.Table);
    }
}
