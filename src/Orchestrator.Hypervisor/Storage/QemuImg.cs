using System.Diagnostics;
using Orchestrator.Hypervisor.Qemu;

namespace Orchestrator.Hypervisor.Storage;

/// <summary>Runs <c>qemu-img</c> with an argument list (never a shell line) and fails with its own words.</summary>
public static class QemuImg
{
    public static async Task<string> RunAsync(IReadOnlyList<string> arguments, string what, CancellationToken cancellationToken)
    {
        var startInfo = new ProcessStartInfo(QemuDriver.ResolveBinary("qemu-img"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        using var process = Process.Start(startInfo) ?? throw new HypervisorException("qemu-img did not start");
        var errors = process.StandardError.ReadToEndAsync(cancellationToken);
        var output = await process.StandardOutput.ReadToEndAsync(cancellationToken);
        await process.WaitForExitAsync(cancellationToken);
        return process.ExitCode == 0
            ? output
            : throw new HypervisorException($"qemu-img could not {what}: {(await errors).Trim()}");
    }

    /// <summary>The image's virtual size in bytes (qemu-img info under its forced format: never a guess from its content).</summary>
    public static async Task<long> VirtualSizeAsync(string path, CancellationToken cancellationToken)
    {
        var json = await RunAsync(["info", "-U", "-f", "qcow2", "--output=json", path], $"read {path}", cancellationToken);
        using var info = System.Text.Json.JsonDocument.Parse(json);
        return info.RootElement.GetProperty("virtual-size").GetInt64();
    }

    /// <summary>
    /// A qcow2 at <paramref name="path"/>: an overlay on <paramref name="baseImage"/> (of <paramref name="baseFormat"/>, written
    /// into the overlay so that QEMU never probes the base) when given, else blank.
    /// </summary>
    public static Task CreateQcow2Async(string path, string? baseImage, long? sizeBytes, CancellationToken cancellationToken,
        string baseFormat = "qcow2")
    {
        List<string> arguments = ["create", "-q", "-f", "qcow2"];
        if (baseImage is not null)
        {
            arguments.AddRange(["-b", baseImage, "-F", baseFormat]);
        }

        arguments.Add(path);
        if (sizeBytes is { } size)
        {
            arguments.Add(size.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        return RunAsync(arguments, baseImage is null ? $"create the disk {path}" : $"create the overlay of {baseImage}", cancellationToken);
    }
}
