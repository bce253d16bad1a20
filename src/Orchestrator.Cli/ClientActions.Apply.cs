// What `apply` does: read the file here, send it, print the plan or what was done.
using System.Globalization;
using Orchestrator.Contracts;

namespace Orchestrator.Cli;

internal sealed partial class ClientActions
{
    /// <summary>The node's limit; a larger file is refused here without sending it.</summary>
    private const int MaxApplyFileBytes = 256 * 1024;

    /// <summary>An apply carries out every step before it answers, waiting for deletes where it replaces VMs.</summary>
    private static readonly TimeSpan ApplyTimeout = TimeSpan.FromMinutes(10);

    public async Task<int> ApplyAsync(ApplyArgs args, CancellationToken ct)
    {
        string text;
        try
        {
            var length = new FileInfo(args.File).Length;
            if (length > MaxApplyFileBytes)
            {
                throw new CliException($"{args.File} is {length / 1024} KiB; an apply file is at most {MaxApplyFileBytes / 1024} KiB");
            }

            text = await File.ReadAllTextAsync(args.File, ct);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"cannot read {args.File}: {e.Message}");
        }

        using var api = Connect(args.Client, ApplyTimeout);
        var path = string.Create(CultureInfo.InvariantCulture,
            $"v1/apply?dryRun={(args.DryRun ? "true" : "false")}&prune={(args.Prune ? "true" : "false")}");
        var response = await api.PostTextAsync(path, text, "application/hocon", ct);
        if (args.Client.Output == OutputFormat.Json)
        {
            WriteJson(response);
            return 0;
        }

        var result = response.Read<ApplyResultDto>();
        Write(Rendering.ApplyTable(result));
        context.Out.WriteLine(Rendering.ApplySummary(result));
        return 0;
    }
}
