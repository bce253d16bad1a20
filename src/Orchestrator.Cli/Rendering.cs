// How API objects look on a terminal: Spectre tables for people, indented raw JSON for scripts.
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using Orchestrator.Contracts;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace Orchestrator.Cli;

/// <summary>Turns problem details into the lines the client prints on stderr.</summary>
public static class ProblemFormatter
{
    /// <summary><c>title: detail</c>; the status stands in for a missing title.</summary>
    public static string Headline(ProblemDetails problem, int statusCode)
    {
        var title = string.IsNullOrWhiteSpace(problem.Title) ? $"HTTP {problem.Status ?? statusCode}" : problem.Title.Trim();
        return string.IsNullOrWhiteSpace(problem.Detail) ? title : $"{title}: {problem.Detail.Trim()}";
    }

    /// <summary>The whole message: <c>error: title: detail</c>, then one indented line per field error.</summary>
    public static IReadOnlyList<string> Lines(ProblemDetails problem, int statusCode)
    {
        var lines = new List<string> { "error: " + Headline(problem, statusCode) };
        if (problem.Errors is not null)
        {
            foreach (var (field, messages) in problem.Errors.OrderBy(e => e.Key, StringComparer.Ordinal))
            {
                foreach (var message in messages ?? [])
                {
                    lines.Add(string.IsNullOrEmpty(field) ? $"  {message}" : $"  {field}: {message}");
                }
            }
        }

        return lines;
    }
}

public static class Rendering
{
    private static readonly JsonWriterOptions IndentedJson = new()
    {
        Indented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, // show names as typed, not \u escapes
    };

    /// <summary>The server's JSON, re-indented, unchanged otherwise (numbers and unknown fields kept).</summary>
    public static string IndentJson(string json)
    {
        using var document = JsonDocument.Parse(json);
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, IndentedJson))
        {
            document.WriteTo(writer);
        }

        return System.Text.Encoding.UTF8.GetString(buffer.ToArray());
    }

    public static IRenderable VmTable(IEnumerable<VmDto> vms)
    {
        var table = PlainTable("NAME", "STATE", "HOST", "VCPUS", "MEMORY", "IMAGE", "EPOCH", "PID", "RESTARTS");
        foreach (var vm in vms.OrderBy(v => v.Name, StringComparer.Ordinal))
        {
            table.AddRow(
                Text(vm.Name),
                State(vm.State),
                Text(vm.Host ?? "-"),
                Text(Number(vm.Vcpus)),
                Text(MiB(vm.MemoryMiB)),
                Text(vm.Image),
                Text(Number(vm.Epoch)),
                Text(vm.Pid is { } pid ? Number(pid) : "-"),
                Text(Number(vm.Restarts)));
        }

        return table;
    }

    /// <summary><c>vm show</c>: a key/value grid, the reason where there is one, then the vCPU threads.</summary>
    public static IRenderable VmDetails(VmDto vm)
    {
        var grid = new Grid();
        grid.AddColumn(new GridColumn().NoWrap().PadRight(2));
        grid.AddColumn(new GridColumn());

        void Row(string key, IRenderable value) => grid.AddRow(new Markup($"[bold]{Markup.Escape(key)}[/]"), value);

        Row("Name", Text(vm.Name));
        Row("Id", Text(vm.Id));
        if (vm.Tenant is not null)
        {
            Row("Tenant", Text(vm.Tenant));
        }

        Row("State", vm.Paused ? new Markup($"{Markup.Escape(vm.State)} [yellow](paused)[/]") : State(vm.State));
        Row("Desired", Text(vm.DesiredState));
        if (!string.IsNullOrWhiteSpace(vm.Reason))
        {
            Row("Reason", vm.State == VmStates.Failed
                ? new Markup($"[red]{Markup.Escape(vm.Reason)}[/]")
                : Text(vm.Reason));
        }

        Row("Host", Text(vm.Host ?? "-"));
        Row("vCPUs", Text(Number(vm.Vcpus)));
        Row("Memory", Text(MiB(vm.MemoryMiB)));
        Row("Image", Text(vm.Image));
        Row("Restart", Text(vm.RestartPolicy ?? "-"));
        Row("Driver", Text(vm.Driver ?? "any"));
        Row("Accelerator", Text(vm.Accelerator ?? "any"));
        if (vm.Disk is { } disk)
        {
            Row("Disk", Text($"{Number(disk.SizeGiB)} GiB" + (disk.Pool is null ? " (not created yet)"
                : disk.PinnedTo is { } pinned ? $" in {pinned}'s local pool {disk.Pool} (the VM runs only there)"
                : $" in shared pool {disk.Pool}")));
        }

        if (vm.Bootstrap is { } boot)
        {
            // Fingerprints and a digest only: the node never sends the user-data back.
            Row("Hostname", Text(boot.Hostname));
            Row("SSH keys", Text(boot.SshKeyFingerprints.Count == 0 ? "-" : string.Join("\n", boot.SshKeyFingerprints)));
            Row("User-data", Text(boot.UserDataSha256 is { } sha ? $"{Number(boot.UserDataBytes)} bytes, sha256 {sha}" : "-"));
        }

        Row("Epoch", Text(Number(vm.Epoch)));
        Row("Pid", Text(vm.Pid is { } pid ? Number(pid) : "-"));
        Row("Restarts", Text(Number(vm.Restarts)));
        Row("Created", Text(Time(vm.CreatedAt)));
        Row("Ready", Text(vm.ReadyAt is { } ready ? Time(ready) : "-"));
        if (vm.Guest is { } guest)
        {
            Row("Guest OS", Text(guest.Os));
            Row("Guest hostname", Text(guest.Hostname));
            Row("Guest addresses", Text(guest.Addresses.Count > 0 ? string.Join(", ", guest.Addresses) : "-"));
        }
        if (vm.Resources is { } r)
        {
            Row("CPU shares", Text(Number(r.CpuShares)));
            Row("CPU reserved", Text(r.CpuReservationMillicores > 0 ? CpuAmounts.Format(r.CpuReservationMillicores) : "-"));
            Row("CPU limit", Text(r.CpuLimitMillicores is { } limit ? CpuAmounts.Format(limit) : "-"));
            Row("CPU entitled", Text(r.EntitledCpuMillicores is { } entitled ? CpuAmounts.Format(entitled) : "-"));
            Row("CPU used", Text(r.UsedCpuMillicores is { } used ? CpuAmounts.Format(used) : "-"));
            Row("CPU demand", Text(r.DemandCpuMillicores is { } demand ? CpuAmounts.Format(demand) : "-"));
            if (r.MemoryReservationMiB > 0 || r.MemoryLimitMiB is not null)
            {
                Row("Memory reserved", Text(r.MemoryReservationMiB > 0 ? MiB(r.MemoryReservationMiB) : "-"));
                Row("Memory limit", Text(r.MemoryLimitMiB is { } memoryLimit ? MiB(memoryLimit) : "-"));
            }

            if (r.Cpuset is not null)
            {
                Row("Cpuset", Text(r.Cpuset));
            }

            if (r.DiskIops is not null || r.DiskBps is not null || r.DiskShares is not null and not 100 /* the default weight */
                || r.EntitledDiskIops is not null || r.EntitledDiskBps is not null)
            {
                Row("Disk IOPS limit", Text(r.DiskIops is { } iops ? Number(iops) : "-"));
                Row("Disk bandwidth limit", Text(r.DiskBps is { } bps ? BytesPerSecond(bps) : "-"));
                Row("Disk shares", Text(r.DiskShares is { } diskShares ? Number(diskShares) : "-"));
                Row("Disk entitled", Text(r.EntitledDiskIops is null && r.EntitledDiskBps is null
                    ? "-"
                    : $"{(r.EntitledDiskIops is { } capIops ? Number(capIops) : "unlimited")} IOPS, " +
                      (r.EntitledDiskBps is { } capBps ? BytesPerSecond(capBps) : "unlimited")));
            }

            if (r.NetBps is not null || r.NetShares is not null and not 100 /* the default weight */ || r.EntitledNetBps is not null)
            {
                Row("Network limit", Text(r.NetBps is { } netBps ? BytesPerSecond(netBps) + " each way" : "-"));
                Row("Network shares", Text(r.NetShares is { } netShares ? Number(netShares) : "-"));
                Row("Network entitled", Text(r.EntitledNetBps is { } guaranteed
                    ? $"{BytesPerSecond(guaranteed)} each way, up to {(r.EntitledNetCeilingBps is { } ceiling ? BytesPerSecond(ceiling) : "unlimited")}"
                    : "-"));
            }
        }

        if (vm.VcpuThreads is not { Count: > 0 } threads)
        {
            return grid;
        }

        var vcpus = PlainTable("VCPU", "THREAD", "CPU SECONDS");
        foreach (var thread in threads.OrderBy(t => t.Index))
        {
            vcpus.AddRow(
                Text(Number(thread.Index)),
                Text(Number(thread.ThreadId)),
                Text(thread.CpuSeconds.ToString("0.00", CultureInfo.InvariantCulture)));
        }

        return new Rows(grid, new Text(string.Empty), vcpus);
    }

    public static IRenderable HostTable(IEnumerable<HostDto> hosts)
    {
        var table = PlainTable("ID", "STATE", "DRIVER", "ACCEL", "CPUS", "MEMORY", "ALLOC VCPUS", "ALLOC MEMORY", "RESERVED CPU", "RESERVED MEMORY", "VMS", "LABELS");
        var notes = new List<IRenderable>();
        foreach (var host in hosts.OrderBy(h => h.Id, StringComparer.Ordinal))
        {
            if (!string.IsNullOrEmpty(host.AcceleratorNote))
            {
                notes.Add(Text($"{host.Id}: {host.AcceleratorNote}"));
            }

            table.AddRow(
                Text(host.Id),
                Text(host.State),
                Text(host.Driver ?? "-"),
                Text(Accelerator(host)),
                Text(Number(host.Cpus)),
                Text(MiB(host.MemoryMiB)),
                Text(Number(host.AllocatedVcpus)),
                Text(MiB(host.AllocatedMemoryMiB)),
                Text(host.ReservedCpuMillicores > 0 ? CpuAmounts.Format(host.ReservedCpuMillicores) : "-"),
                Text(host.ReservedMemoryMiB > 0 ? MiB(host.ReservedMemoryMiB) : "-"),
                Text(Number(host.Vms)),
                Text(Labels(host.Labels)));
        }

        // Why a host fell back to TCG is what its operator fixes: under the table, not cut to a column's width.
        return notes.Count == 0 ? table : new Rows([table, .. notes]);
    }

    public static IRenderable HostDetails(HostDto host)
    {
        var grid = new Grid();
        grid.AddColumn(new GridColumn().NoWrap());
        grid.AddColumn();
        void Row(string label, IRenderable value) => grid.AddRow(new Text(label), value);
        Row("Id", Text(host.Id));
        Row("State", Text(host.State));
        Row("Driver", Text(host.Driver ?? "-"));
        Row("Accelerator", Text(Accelerator(host)));
        if (!string.IsNullOrEmpty(host.AcceleratorNote))
        {
            Row("Why", Text(host.AcceleratorNote));
        }

        Row("CPUs", Text(Number(host.Cpus)));
        Row("Memory", Text(MiB(host.MemoryMiB)));
        Row("Allocated", Text($"{Number(host.AllocatedVcpus)} vCPUs, {MiB(host.AllocatedMemoryMiB)}"));
        Row("Storage", Text(host.Pools is { Count: > 0 } pools
            ? string.Join("\n", pools.Select(p => $"{p.Id}: {p.Kind}, {Number(p.CapacityGiB)} GiB × {p.Overcommit:0.##}{(p.Shared ? ", shared" : "")}"))
            : "-"));
        Row("Reserved", Text($"{(host.ReservedCpuMillicores > 0 ? CpuAmounts.Format(host.ReservedCpuMillicores) : "-")} CPU, " +
                             $"{(host.ReservedMemoryMiB > 0 ? MiB(host.ReservedMemoryMiB) : "-")} memory"));
        Row("VMs", Text(Number(host.Vms)));
        Row("Labels", Text(Labels(host.Labels)));
        return grid;
    }

    /// <summary>"ssd=true,zone=a", or "-" for none.</summary>
    private static string Labels(IReadOnlyDictionary<string, string>? labels) =>
        labels is { Count: > 0 } ? string.Join(",", labels.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => $"{l.Key}={l.Value}")) : "-";

    /// <summary>"kvm (host)", "tcg (max)", or "-" for a host that did not say.</summary>
    private static string Accelerator(HostDto host) =>
        host.Accelerator is { Length: > 0 } kind ? $"{kind}{(string.IsNullOrEmpty(host.CpuModel) ? "" : $" ({host.CpuModel})")}" : "-";

    /// <summary>A table of the given fields of a JSON object or array of objects (nested values shown compact).</summary>
    public static IRenderable Generic(string json, IReadOnlyList<string> fields)
    {
        var node = System.Text.Json.Nodes.JsonNode.Parse(json);
        var rows = node is System.Text.Json.Nodes.JsonArray array ? array.ToList() : [node];
        var table = PlainTable(fields.Select(f => f.ToUpperInvariant()).ToArray());
        foreach (var row in rows)
        {
            table.AddRow(fields.Select(f => (IRenderable)Text(row?[f] switch
            {
                null => "-",
                System.Text.Json.Nodes.JsonValue value => value.ToString(),
                var other => other.ToJsonString(),
            })).ToArray());
        }

        return table;
    }

    public static IRenderable TenantTable(IEnumerable<TenantDto> tenants)
    {
        var table = PlainTable("ID", "STATE", "VMS", "VCPUS", "MEMORY");
        foreach (var t in tenants.OrderBy(t => t.Id, StringComparer.Ordinal))
        {
            table.AddRow(
                Text(t.Id),
                Text(t.Disabled ? "disabled" : "enabled"),
                Text(Of(t.Usage.Vms, t.Quota.Vms)),
                Text(Of(t.Usage.Vcpus, t.Quota.Vcpus)),
                Text(Of(t.Usage.MemoryMiB, t.Quota.MemoryMiB, " MiB")));
        }

        return table;
    }

    /// <summary><c>tenant show</c>: state, usage against quota, then the keys (ids and roles; never secrets).</summary>
    public static IRenderable TenantDetails(TenantDto t)
    {
        var grid = new Grid();
        grid.AddColumn(new GridColumn().NoWrap().PadRight(2));
        grid.AddColumn(new GridColumn());
        void Row(string key, string value) => grid.AddRow(new Markup($"[bold]{Markup.Escape(key)}[/]"), Text(value));
        Row("Tenant", t.Id);
        Row("State", t.Disabled ? "disabled" : "enabled");
        Row("VMs", Of(t.Usage.Vms, t.Quota.Vms));
        Row("vCPUs", Of(t.Usage.Vcpus, t.Quota.Vcpus));
        Row("Memory", Of(t.Usage.MemoryMiB, t.Quota.MemoryMiB, " MiB"));
        Row("Storage", Of(t.Usage.StorageGiB, t.Quota.StorageGiB, " GiB"));
        Row("Snapshots", Of(t.Usage.Snapshots, t.Quota.Snapshots));
        Row("Volumes", Of(t.Usage.Volumes, t.Quota.Volumes));
        Row("Networks", Of(t.Usage.Networks, t.Quota.Networks));
        Row("Addresses", Of(t.Usage.Addresses, t.Quota.Addresses));
        if (t.Quota.ForwardPorts is { } forwardPorts)
        {
            Row("Forward ports", forwardPorts);
        }

        if (t.Pool is { } pool)
        {
            Row("CPU pool", $"shares {(pool.CpuShares is { } s ? Number(s) : "its VMs'")}, reserved {Number(pool.CpuReservationMillicores ?? 0)}m, " +
                            $"limit {(pool.CpuLimitMillicores is { } l ? Number(l) + "m" : "none")} (per host)");
        }

        if (t.Keys is not { Count: > 0 } keys)
        {
            return grid;
        }

        var table = PlainTable("KEY ID", "ROLE", "NAME", "CREATED", "REVOKED");
        foreach (var k in keys)
        {
            table.AddRow(Text(k.KeyId), Text(k.Role), Text(k.Name ?? "-"), Text(Time(k.CreatedAt)), Text(k.RevokedAt is { } r ? Time(r) : "-"));
        }

        return new Rows(grid, new Text(string.Empty), table);
    }

    /// <summary>"3 of 10", or "3 (no limit)"; the unit after each figure.</summary>
    private static string Of(long used, long? limit, string unit = "") =>
        limit is { } max ? $"{Number(used)}{unit} of {Number(max)}{unit}" : $"{Number(used)}{unit} (no limit)";

    /// <summary>The line under <c>host list</c>: totals, and the HA headroom when one is configured.</summary>
    public static string CapacityLine(CapacityDto c)
    {
        var line = $"{Number(c.HostsUp)} host(s) up: {Number(c.AllocatedVcpus)}/{Number(c.Vcpus)} vCPUs, " +
                   $"{MiB(c.AllocatedMemoryMiB)}/{MiB(c.MemoryMiB)} allocated";
        if (c.HaHeadroomHosts <= 0)
        {
            return line + "; no HA headroom kept";
        }

        return line + $"; HA headroom for the {Number(c.HaHeadroomHosts)} fullest host(s): needs {Number(c.HaNeededVcpus)} vCPUs and " +
               $"{MiB(c.HaNeededMemoryMiB)}, the others have {Number(c.HaSpareVcpus)} vCPUs and {MiB(c.HaSpareMemoryMiB)} spare" +
               (c.HaHeadroomHolds ? "" : " (NOT ENOUGH: new VMs wait as Pending)");
    }

    public static IRenderable ImageTable(IEnumerable<ImageDto> images)
    {
        var table = PlainTable("NAME", "DESCRIPTION", "KIND", "FORMAT", "SHA256");
        foreach (var image in images.OrderBy(i => i.Name, StringComparer.Ordinal))
        {
            table.AddRow(Text(image.Name), Text(image.Description ?? ""), Text(image.Kind ?? "catalog"), Text(image.Format ?? ""),
                Text(image.Sha256 is { Length: > 16 } hash ? hash[..16] + "…" : image.Sha256 ?? ""));
        }

        return table;
    }

    /// <summary><c>apply</c>: one row per VM, in the order the node planned (by name).</summary>
    public static IRenderable ApplyTable(ApplyResultDto result)
    {
        var table = PlainTable("ACTION", "VM", "DETAIL");
        foreach (var step in result.Steps)
        {
            var color = step.Action switch
            {
                "create" => "green",
                "update" => "yellow",
                "replace" or "delete" => "red",
                _ => "grey",
            };
            table.AddRow(new Markup($"[{color}]{Markup.Escape(step.Action)}[/]"), Text(step.Vm), Text(step.Detail ?? ""));
        }

        return table;
    }

    /// <summary>"1 to create, 0 to update, …" for a dry run; "applied: 1 created, …" once done.</summary>
    public static string ApplySummary(ApplyResultDto result)
    {
        int Count(string action) => result.Steps.Count(s => s.Action == action);
        return result.DryRun
            ? $"{Count("create")} to create, {Count("update")} to update, {Count("replace")} to replace, {Count("delete")} to delete, " +
              $"{Count("unchanged")} unchanged"
            : $"applied: {Count("create")} created, {Count("update")} updated, {Count("replace")} replaced, {Count("delete")} deleted, " +
              $"{Count("unchanged")} unchanged";
    }

    /// <summary>Renders to a string with no colour and no ANSI, as a pipe would get it (tests, logs).</summary>
    public static string ToPlainText(IRenderable renderable, int width = 200)
    {
        var writer = new StringWriter();
        var console = CliConsoles.Create(writer, isTerminal: false);
        console.Profile.Width = width;
        console.Write(renderable);
        return TrimLineEnds(writer.ToString());
    }

    // Spectre pads every cell to its column's width; a pipe is better off without trailing blanks.
    private static string TrimLineEnds(string text) =>
        string.Join('\n', text.Split('\n').Select(line => line.TrimEnd()));

    internal static string StateColor(string state) => state switch
    {
        VmStates.Ready or VmStates.Running => "green",
        VmStates.Failed => "red",
        VmStates.Stopped => "grey",
        _ => "yellow",
    };

    private static Table PlainTable(params string[] headers)
    {
        // kubectl/docker look: no borders, two spaces between columns; easy to read and to cut/awk.
        var table = new Table().Border(TableBorder.None);
        foreach (var header in headers)
        {
            table.AddColumn(new TableColumn(new Markup($"[bold]{Markup.Escape(header)}[/]")).PadLeft(0).PadRight(2).NoWrap());
        }

        return table;
    }

    private static IRenderable Text(string value) => new Text(value);

    private static IRenderable State(string state) => new Markup($"[{StateColor(state)}]{Markup.Escape(state)}[/]");

    private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static string BytesPerSecond(long bps) => (bps / 1024.0 / 1024.0).ToString("0.##", CultureInfo.InvariantCulture) + " MiB/s";

    private static string MiB(long mib) => $"{mib.ToString(CultureInfo.InvariantCulture)} MiB";

    private static string Time(DateTimeOffset time) =>
        time.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
}
