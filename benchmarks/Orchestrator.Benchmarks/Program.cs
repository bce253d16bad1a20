// dotnet run -c Release --project benchmarks/Orchestrator.Benchmarks -- --filter '*'
using BenchmarkDotNet.Running;

BenchmarkSwitcher.FromAssembly(typeof(Orchestrator.Benchmarks.PlacementBenchmarks).Assembly).Run(args);
