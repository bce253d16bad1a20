// The apply file: HOCON naming a tenant's VMs, read with Akka's parser after a check that it is safe to give it.
using System.Globalization;
using Akka.Configuration;
using Akka.Configuration.Hocon;
using Orchestrator.Contracts;
using Orchestrator.Domain.Apply;
using Orchestrator.Domain.Vms;

namespace Orchestrator.Api;

/// <summary>
/// Parses an apply file into the VMs it wants. Every error names its path in the file (<c>vms.web-1.vcpus</c>).
/// <code>
/// vms {
///   web-1 {
///     vcpus = 1, memory-mib = 256, image = demo
///     restart = on-failure        # always | on-failure | never (default on-failure)
///     state = running             # running | stopped (default running)
///     cpu-shares = 2048           # cpu-reservation / cpu-limit: 500m or 0.5; memory-reservation-mib; memory-limit-mib
///     cpuset = "0-1"
///     disk-iops = 500, disk-bps = 4194304, disk-shares = 200   # the VM's disks together; shares weigh under contention
///     net-bps = 1048576, net-shares = 200   # the VM's NICs together, bytes/s of frames each way; shares weigh under contention
///     labels { env = dev }
///     hostname = web-1.example.org   # the guest's (default: the VM's name)
///     ssh-keys = ["ssh-ed25519 AAAA… me@host"]
///     user-data-base64 = "IyEvYmluL3NoCmVjaG8gaGkK"   # base64 -w0 FILE: at most 64 KiB, handed to the guest byte for byte
///     host-selector = ["zone=a", "ssd", "!gpu"]   # host labels that must hold (key=value, key!=value, key, !key)
///     group = web                 # one of the tenant's server groups (group create)
///   }
/// }
/// </code>
/// The text comes from a tenant: <c>include</c> and substitutions (<c>${…}</c>) are refused before Akka's parser
/// sees it (an include would open a file; a substitution cycle recurses without end), and so is nesting deeper than
/// the format needs (the parser recurses per level).
/// </summary>
public static class ApplyFile
{
    public const int MaxBytes = 256 * 1024;
    public const int MaxVms = 1000;

    private static readonly string[] KnownFields =
    [
        "vcpus", "memory-mib", "image", "restart", "state", "cpu-shares", "cpu-reservation", "cpu-limit", "memory-reservation-mib",
        "memory-limit-mib", "cpuset", "labels", "driver", "accelerator", "hostname", "ssh-keys", "user-data-base64",
        "host-selector", "group", "disk-iops", "disk-bps", "disk-shares", "net-bps", "net-shares",
    ];

    /// <summary>The file's field for a field of <see cref="VmSpecValidator"/> or of a ledger refusal.</summary>
    public static string FieldPath(string vm, string specField)
    {
        var (head, rest) = specField.IndexOfAny(['.', '[']) is var dot and > 0 ? (specField[..dot], specField[dot..]) : (specField, "");
        var field = head switch
        {
            "name" => null,
            "memoryMiB" => "memory-mib",
            "restartPolicy" => "restart",
            "cpuShares" => "cpu-shares",
            "cpuReservationMillicores" => "cpu-reservation",
            "cpuLimitMillicores" => "cpu-limit",
            "memoryReservationMiB" => "memory-reservation-mib",
            "memoryLimitMiB" => "memory-limit-mib",
            "sshKeys" => "ssh-keys",
            "userData" => "user-data-base64",
            "hostSelector" => "host-selector",
            "diskIops" => "disk-iops",
            "diskBps" => "disk-bps",
            "diskShares" => "disk-shares",
            "netBps" => "net-bps",
            "netShares" => "net-shares",
            _ => head,
        };
        return field is null ? $"vms.{vm}" : $"vms.{vm}.{field}{rest}";
    }

    public static (IReadOnlyList<DesiredVm> Vms, IReadOnlyList<FieldError> Errors) Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var errors = new List<FieldError>();
        if (System.Text.Encoding.UTF8.GetByteCount(text) > MaxBytes)
        {
            return ([], [new FieldError("file", $"is larger than {MaxBytes / 1024} KiB")]);
        }

        List<DesiredVm> vms;
        try
        {
            new ShapeCheck(text, errors).Run();
            if (errors.Count > 0)
            {
                return ([], FieldError.Bounded(errors));
            }

            var config = ConfigurationFactory.ParseString(text, _ => throw new FormatException("include is not allowed"));
            vms = Read(config.Root, errors);
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            // Akka's parser documents none of its exceptions; any of them means text it cannot read.
            return ([], [new FieldError("file", "is not valid HOCON: " + FirstLine(ex.Message))]);
        }

        return errors.Count > 0 ? ([], FieldError.Bounded(errors)) : (vms, []);
    }

    /// <summary>What the ledger would refuse in each VM (vCPUs, memory, image, resources, labels), named by path.</summary>
    public static IReadOnlyList<FieldError> Validate(IReadOnlyList<DesiredVm> vms, VmSpecLimits limits, IReadOnlySet<string> images) =>
        FieldError.Bounded(vms
            .SelectMany(vm => VmSpecValidator.Validate(vm.Spec, limits, images).Select(e => new FieldError(FieldPath(vm.Name, e.Field), e.Message)))
            .ToList());

    private static List<DesiredVm> Read(HoconValue? root, List<FieldError> errors)
    {
        var result = new List<DesiredVm>();
        var top = root is not null && root.IsObject() ? root.GetObject().Items : new Dictionary<string, HoconValue>();
        foreach (var key in top.Keys.Where(k => k != "vms").Order(StringComparer.Ordinal))
        {
            errors.Add(new FieldError(FieldError.Echo(key), "unknown key (an apply file has only vms { … })"));
        }

        if (!top.TryGetValue("vms", out var vmsValue))
        {
            errors.Add(new FieldError("vms", "is required: the VMs, by name (vms { web-1 { vcpus = 1, memory-mib = 256, image = demo } })"));
            return result;
        }

        if (!vmsValue.IsObject())
        {
            errors.Add(new FieldError("vms", "must be an object of VMs by name"));
            return result;
        }

        var vms = vmsValue.GetObject().Items;
        if (vms.Count > MaxVms)
        {
            errors.Add(new FieldError("vms", $"at most {MaxVms} VMs, the file has {vms.Count}"));
            return result;
        }

        foreach (var (name, value) in vms.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var path = "vms." + FieldError.Echo(name);
            if (!VmSpecValidator.IsValidName(name))
            {
                errors.Add(new FieldError(path,
                    "is not a valid VM name: 1-63 lowercase letters, digits and '-', starting with a letter and not ending with '-'"));
                continue;
            }

            if (!value.IsObject())
            {
                errors.Add(new FieldError(path, "must be an object such as { vcpus = 1, memory-mib = 256, image = demo }"));
                continue;
            }

            if (ReadVm(name, path, value.GetObject().Items, errors) is { } vm)
            {
                result.Add(vm);
            }
        }

        return result;
    }

    private static DesiredVm? ReadVm(string name, string path, Dictionary<string, HoconValue> fields, List<FieldError> errors)
    {
        var before = errors.Count;
        foreach (var key in fields.Keys.Where(k => !KnownFields.Contains(k)).Order(StringComparer.Ordinal))
        {
            errors.Add(new FieldError($"{path}.{FieldError.Echo(key)}", $"unknown key (known: {string.Join(", ", KnownFields)})"));
        }

        string? Text(string field)
        {
            if (!fields.TryGetValue(field, out var value))
            {
                return null;
            }

            if (!value.IsString())
            {
                errors.Add(new FieldError($"{path}.{field}", "must be a single value, not an object or a list"));
                return null;
            }

            return value.GetString();
        }

        int? Whole(string field) => (int?)Number(field, int.MinValue, int.MaxValue);

        long? WholeLong(string field) => Number(field, long.MinValue, long.MaxValue);

        long? Number(string field, long min, long max)
        {
            var text = Text(field);
            if (text is null)
            {
                return null;
            }

            if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number) && number >= min && number <= max)
            {
                return number;
            }

            errors.Add(new FieldError($"{path}.{field}", text.TrimStart('-').All(char.IsAsciiDigit) && text.TrimStart('-').Length > 0
                ? $"is out of range, was '{FieldError.Echo(text)}'"
                : $"must be a whole number, was '{FieldError.Echo(text)}'"));
            return null;
        }

        int? Millicores(string field)
        {
            var text = Text(field);
            if (text is null)
            {
                return null;
            }

            if (CpuAmounts.TryParseMillicores(text, out var millicores))
            {
                return millicores;
            }

            errors.Add(new FieldError($"{path}.{field}", $"must be millicores (500m) or CPUs (0.5), was '{FieldError.Echo(text)}'"));
            return null;
        }

        var vcpus = Whole("vcpus");
        var memory = Whole("memory-mib");
        var image = Text("image");
        foreach (var (field, given) in new[] { ("vcpus", vcpus is not null), ("memory-mib", memory is not null), ("image", image is not null) })
        {
            if (!given && !errors.Any(e => e.Field == $"{path}.{field}"))
            {
                errors.Add(new FieldError($"{path}.{field}", "is required"));
            }
        }

        var policy = RestartPolicy.OnFailure;
        if (Text("restart") is { } restart && !RestartPolicies.TryParse(restart, out policy))
        {
            errors.Add(new FieldError($"{path}.restart", "must be one of always, on-failure, never"));
        }

        var state = DesiredState.Running;
        switch (Text("state"))
        {
            case null or "running":
                break;
            case "stopped":
                state = DesiredState.Stopped;
                break;
            default:
                errors.Add(new FieldError($"{path}.state", "must be running or stopped"));
                break;
        }

        var shares = Whole("cpu-shares");
        var reservation = Millicores("cpu-reservation");
        var limit = Millicores("cpu-limit");
        var memoryReservation = Whole("memory-reservation-mib");
        var memoryLimit = Whole("memory-limit-mib");
        var cpuset = Text("cpuset");
        var diskIops = WholeLong("disk-iops");
        var diskBps = WholeLong("disk-bps");
        var diskShares = Whole("disk-shares");
        var netBps = WholeLong("net-bps");
        var netShares = Whole("net-shares");
        var resources = fields.Keys.Any(k => k is "cpu-shares" or "cpu-reservation" or "cpu-limit" or "memory-reservation-mib" or "memory-limit-mib" or "cpuset"
                or "disk-iops" or "disk-bps" or "disk-shares" or "net-bps" or "net-shares")
            ? new VmResources(shares, reservation ?? 0, limit, memoryReservation ?? 0, memoryLimit, cpuset, diskIops, diskBps, diskShares, netBps, netShares)
            : null;
        var labels = ReadLabels(path, fields, errors);
        var driver = Text("driver");
        var accelerator = Text("accelerator");
        // Base64, not text: Akka's parser trims a value's ends and a text cannot hold every byte, so text could not reach
        // the guest as written.
        byte[]? userData = null;
        if (Text("user-data-base64") is { } base64)
        {
            try
            {
                userData = Convert.FromBase64String(base64);
            }
            catch (FormatException)
            {
                errors.Add(new FieldError($"{path}.user-data-base64", "must be base64 (base64 -w0 FILE)"));
            }
        }

        var bootstrap = VmBootstrap.Of(Text("hostname"), ReadTexts(path, "ssh-keys", fields, errors), userData);

        var hostSelector = ReadTexts(path, "host-selector", fields, errors);
        var group = Text("group");

        return errors.Count > before
            ? null
            : new DesiredVm(new VmSpec(name, vcpus!.Value, memory!.Value, image!, policy, resources, labels, driver, accelerator, bootstrap,
                HostSelector: hostSelector, Group: group), state);
    }

    private static List<string>? ReadTexts(string path, string field, Dictionary<string, HoconValue> fields, List<FieldError> errors)
    {
        if (!fields.TryGetValue(field, out var value))
        {
            return null;
        }

        if (!value.IsArray() || value.GetArray() is not { } items || items.Any(item => !item.IsString()))
        {
            errors.Add(new FieldError($"{path}.{field}", "must be a list of strings"));
            return null;
        }

        return [.. items.Select(item => item.GetString())];
    }

    private static SortedDictionary<string, string>? ReadLabels(string path, Dictionary<string, HoconValue> fields, List<FieldError> errors)
    {
        if (!fields.TryGetValue("labels", out var value))
        {
            return null;
        }

        if (!value.IsObject())
        {
            errors.Add(new FieldError($"{path}.labels", "must be an object of key = value"));
            return null;
        }

        var labels = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, label) in value.GetObject().Items)
        {
            if (!label.IsString() || label.GetString() is not { } text)
            {
                errors.Add(new FieldError($"{path}.labels.{FieldError.Echo(key)}", "must be a single value"));
                continue;
            }

            labels[key] = text;
        }

        return labels;
    }

    private static string FirstLine(string message) => FieldError.Echo(message.Split('\n', 2)[0].Trim());

    /// <summary>
    /// Walks the text with Akka's own tokenizer the way its parser does (Akka.Configuration.Hocon.Parser), without
    /// building anything: refuses what must never reach the parser, and a key given twice (which HOCON would merge).
    /// </summary>
    private sealed class ShapeCheck(string text, List<FieldError> errors)
    {
        /// <summary>vms.NAME.labels.KEY is four; the parser recurses once per level.</summary>
        private const int MaxDepth = 6;

        private readonly HoconTokenizer _reader = new(text);
        private readonly HashSet<string> _values = new(StringComparer.Ordinal);
        private readonly HashSet<string> _vmBlocks = new(StringComparer.Ordinal);

        private bool Failed => errors.Count > 0;

        public void Run()
        {
            _reader.PullWhitespaceAndComments();
            Object([], root: true);
        }

        private void Object(IReadOnlyList<string> path, bool root)
        {
            while (!_reader.EoF && !Failed)
            {
                var token = _reader.PullNext();
                switch (token.Type)
                {
                    case TokenType.Include:
                        Fail(path, "include is not allowed: the server reads nothing but the file it is sent");
                        return;
                    case TokenType.Key:
                        KeyContent([.. path, token.Value]);
                        if (!root)
                        {
                            return;
                        }

                        break;
                    case TokenType.ObjectEnd:
                        return;
                }
            }
        }

        private void KeyContent(IReadOnlyList<string> path)
        {
            if (path.Count > MaxDepth)
            {
                Fail(path.Take(MaxDepth).ToList(), "is nested deeper than an apply file goes");
                return;
            }

            while (!_reader.EoF && !Failed)
            {
                var token = _reader.PullNext();
                switch (token.Type)
                {
                    case TokenType.Dot:
                        Object(path, root: false);
                        return;
                    case TokenType.Assign:
                        Value(path);
                        return;
                    case TokenType.ObjectStart:
                        Block(path);
                        Object(path, root: true);
                        return;
                }
            }
        }

        private void Value(IReadOnlyList<string> path)
        {
            if (_reader.EoF)
            {
                Fail(path, "has no value");
                return;
            }

            _reader.PullWhitespaceAndComments();
            var simple = false;
            while (!Failed && IsValue())
            {
                if (_reader.IsObjectStart())
                {
                    _reader.PullStartOfObject();
                    Block(path);
                    Object(path, root: true);
                }
                else if (_reader.IsArrayStart())
                {
                    _reader.PullArrayStart();
                    Array([.. path, "[]"]);
                    simple = true;
                }
                else if (_reader.IsSubstitutionStart())
                {
                    Fail(path, "substitutions (${…}) are not allowed");
                    return;
                }
                else
                {
                    // Akka's parser trims what a quoted value ends with ("demo\n" reads as demo): refused here instead,
                    // like a control character anywhere in a value, so the file means what it says.
                    if (_reader.PullValue() is { Value: { } text } && text.Any(char.IsControl))
                    {
                        Fail(path, "must not contain control characters (a newline, a tab, an escape)");
                        return;
                    }

                    simple = true;
                }

                if (_reader.IsSpaceOrTab())
                {
                    _reader.PullSpaceOrTab();
                }
            }

            if (simple && path[^1] != "[]" && !_values.Add(Joined(path)))
            {
                Fail(path, "is given twice");
            }

            if (_reader.IsComma())
            {
                _reader.PullComma();
            }
        }

        private void Array(IReadOnlyList<string> path)
        {
            if (path.Count > MaxDepth)
            {
                Fail(path.Take(MaxDepth).ToList(), "is nested deeper than an apply file goes");
                return;
            }

            while (!Failed && !_reader.EoF && !_reader.IsArrayEnd())
            {
                Value(path);
                _reader.PullWhitespaceAndComments();
                // Akka's parser loops for ever on anything else here (a '}' inside a list, say).
                if (!_reader.EoF && !_reader.IsArrayEnd() && !_reader.IsComma() && !IsValue())
                {
                    Fail(path.Take(path.Count - 1).ToList(), "has a malformed list");
                    return;
                }
            }

            if (!_reader.EoF)
            {
                _reader.PullArrayEnd();
            }
        }

        /// <summary>An object opened for <paramref name="path"/>: a VM's block twice is a VM given twice.</summary>
        private void Block(IReadOnlyList<string> path)
        {
            if (path is ["vms", _] && !_vmBlocks.Add(Joined(path)))
            {
                Fail(path, "is given twice (one block per VM)");
            }
        }

        // The parser's own test (internal to Akka): what may start a value.
        private bool IsValue() =>
            _reader.IsArrayStart() || _reader.IsObjectStart() || _reader.IsStartOfQuotedText() || _reader.IsSubstitutionStart()
            || _reader.IsStartSimpleValue();

        private void Fail(IReadOnlyList<string> path, string message) =>
            errors.Add(new FieldError(path.Count == 0 ? "file" : Joined(path), message));

        private static string Joined(IReadOnlyList<string> path) => string.Join(".", path.Select(FieldError.Echo));
    }
}
